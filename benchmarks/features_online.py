"""How fast are online feature reads, on SQLite and on Redis?

A view of 20 features for 100,000 entities is materialized into each online store; then
``store.online_features`` is timed for 1 entity x 20 features and 100 entities x 20
features (p50/p99 over many reads). Baseline in the same run: the bare backend read of
the same rows (SQLite ``SELECT ... WHERE key IN`` + JSON decode; a Redis pipeline of
``HMGET``), so the ratio is driftloop's own overhead. Target: p99 under 1 ms for one
entity on SQLite.

    python benchmarks/features_online.py [--quick] [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop import __version__
from driftloop.features import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnlineStore,
    RedisOnlineStore,
    SqliteOnlineStore,
)
from driftloop.features._store import entity_key

START = datetime(2025, 1, 1)
FEATURES = [f"f{j}" for j in range(20)]


def source(entities: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "entity_id": np.arange(entities),
            "ts": pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, 86_400, entities), "s"),
        }
    )
    for name in FEATURES:
        frame[name] = rng.normal(size=entities)
    return frame


def percentiles(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):
        fn()
    runs = np.empty(n)
    for i in range(n):
        started = time.perf_counter()
        fn()
        runs[i] = time.perf_counter() - started
    return float(np.percentile(runs, 50) * 1e3), float(np.percentile(runs, 99) * 1e3)


def raw_read(online: OnlineStore, keys: list[str]) -> Callable[[], Any]:
    if isinstance(online, SqliteOnlineStore):
        db = sqlite3.connect(online.path, check_same_thread=False)
        marks = ",".join("?" * len(keys))
        sql = f"SELECT key, ts, payload FROM latest WHERE key IN ({marks})"
        return lambda: [json.loads(p) for _, _, p in db.execute(sql, keys)]
    assert isinstance(online, RedisOnlineStore)
    client = online._client

    def read() -> Any:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(online.prefix + "l:" + key, "ts", "v")
        return [json.loads(v) for _, v in pipe.execute() if v]

    return read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10k entities, fewer reads")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    entities = 10_000 if args.quick else 100_000
    reads = 2_000 if args.quick else 10_000
    frame = source(entities)
    view = FeatureView(
        "profile", [Entity("user", ["entity_id"])], frame, "ts", schema=[Field(f) for f in FEATURES]
    )
    rng = np.random.default_rng(5)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends: dict[str, Callable[[], OnlineStore]] = {
            "sqlite": lambda: SqliteOnlineStore(Path(tmp) / "online.db"),
            "redis": lambda: RedisOnlineStore(args.redis_url, prefix=f"bench:{uuid.uuid4().hex}:"),
        }
        for name, make in backends.items():
            try:
                online = make()
                store = FeatureStore(definitions=[view], online_store=online)
                started = time.perf_counter()
                store.materialize(START, START + timedelta(days=2), progress=False)
                write_s = time.perf_counter() - started
                gc.collect()  # measure steady-state reads, not the materialization's garbage
            except ConnectionError as exc:
                print(f"{name}: skipped ({exc})")
                continue
            for batch in (1, 100):
                ids = rng.integers(0, entities, batch).tolist()
                rows = [{"entity_id": i} for i in ids]
                keys = [entity_key("profile", [i]) for i in ids]
                n = reads if batch == 1 else reads // 5
                ours = percentiles(partial(store.online_features, FEATURES, rows), n)
                bare = percentiles(raw_read(online, keys), n)
                results[f"{name}_{batch}"] = {"p50_ms": ours[0], "p99_ms": ours[1]}
                results[f"{name}_{batch}_bare"] = {"p50_ms": bare[0], "p99_ms": bare[1]}
                print(
                    f"{name:6} {batch:>3} entity x 20 features: p50 {ours[0]:.3f} ms, "
                    f"p99 {ours[1]:.3f} ms | bare backend read p50 {bare[0]:.3f} ms, "
                    f"p99 {bare[1]:.3f} ms | overhead p50 {ours[0] / bare[0]:.1f}x"
                )
            results[f"{name}_materialize_s"] = write_s
            print(f"{name:6} materialize {entities:,} entities x 20 features: {write_s:.2f} s")
            store.close()
    if "sqlite_1" in results:
        ok = results["sqlite_1"]["p99_ms"] < 1.0
        print(f"target p99 < 1 ms for 1 entity on SQLite: {'met' if ok else 'NOT met'}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    meta = {"driftloop": __version__, "python": platform.python_version(), "cores": os.cpu_count()}
    payload = {**meta, "entities": entities, "reads": reads, **results}
    (out / "features_online.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
