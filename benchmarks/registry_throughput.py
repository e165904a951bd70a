"""Registry writes and alias look-ups per second, on SQLite and PostgreSQL.

Baseline in the same run, on the same engine: a bare ``INSERT`` of one row (writes) and
a bare ``SELECT`` by primary key (look-ups) through SQLAlchemy, so the ratio shows what
the registry adds (transaction with version numbering, card, artifact hashing; alias
history query plus version read).

    python benchmarks/registry_throughput.py [--quick] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftloop import __version__
from driftloop.registry import LightGBMFlavor, Registry, Signature
from driftloop.registry._db import make_engine


def rate(fn: Callable[[int], None], n: int, repeats: int = 3) -> tuple[float, list[float]]:
    rates = []
    for r in range(repeats):
        started = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates), rates


def bench(url: str, artifacts: str, n: int) -> dict[str, float]:
    registry = Registry.from_url(url, artifacts)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(500, 20)), columns=[f"f{i}" for i in range(20)])
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1)
    model.fit(X, (X["f0"] > 0).astype(int))
    files = LightGBMFlavor(export_onnx=False).save(model, list(X.columns))
    sig = Signature.from_frame(X)
    name = f"bench_{uuid.uuid4().hex[:8]}"

    def write(i: int) -> None:
        registry.register_files(name, "lightgbm", files, signature=sig, metrics={"auc": 0.9})

    writes, write_runs = rate(write, n)
    registry.set_alias(name, "champion", 1, who="bench")

    def lookup(i: int) -> None:
        registry.resolve(name, "champion")

    lookups, lookup_runs = rate(lookup, n * 4)

    engine = make_engine(url)
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT)"))

    def raw_write(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:i, :b)"), {"i": i, "b": "x" * 200})

    def raw_read(i: int) -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT body FROM {table} WHERE id = :i"), {"i": i % n}).all()

    raw_writes, _ = rate(raw_write, n)
    raw_reads, _ = rate(raw_read, n * 4)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    registry.close()
    engine.dispose()
    return {
        "writes_per_s": writes,
        "write_runs": write_runs,
        "raw_insert_per_s": raw_writes,
        "lookups_per_s": lookups,
        "lookup_runs": lookup_runs,
        "raw_select_per_s": raw_reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer operations")
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL URL ('' to skip); a throwaway schema is created and dropped",
    )
    args = parser.parse_args()
    n = 50 if args.quick else 300
    work = Path(tempfile.mkdtemp(prefix="driftloop-regbench-"))
    results = {"sqlite": bench(f"sqlite:///{work}/registry.db", str(work / "a"), n)}
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = f"{args.postgres}?options=-csearch_path%3D{schema}"
            results["postgresql"] = bench(url, str(work / "b"), n)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(f"registry throughput ({n} writes, {4 * n} look-ups per run, median of 3)")
    for backend, r in results.items():
        write_ratio = r["writes_per_s"] / r["raw_insert_per_s"]
        read_ratio = r["lookups_per_s"] / r["raw_select_per_s"]
        print(
            f"  {backend:<10} writes {r['writes_per_s']:8.0f}/s  (bare INSERT "
            f"{r['raw_insert_per_s']:8.0f}/s, ratio {write_ratio:.2f})"
        )
        print(
            f"  {'':<10} alias look-ups {r['lookups_per_s']:8.0f}/s  (bare SELECT "
            f"{r['raw_select_per_s']:8.0f}/s, ratio {read_ratio:.2f})"
        )
    out = Path(__file__).parent / "results" / "registry_throughput.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"driftloop": __version__, "python": platform.python_version(), "cores": os.cpu_count()}
    out.write_text(json.dumps({**results, **meta}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
