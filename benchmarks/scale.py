"""Beyond one machine, side by side in one run: offline work on Ray, serving behind a balancer.

``offline``: the point-in-time training frame of N entity rows (1M and 10M; ``--quick``:
200k and 1M) over two Parquet feature views (TTL, created-time cutoff, 12 features), built
by the local DuckDB join (the baseline) and by hash partitions on a Ray cluster with 1
and then 2 workers (tasks in flight). Every Ray frame is checked equal to the local
one. Printed: times, ratios to local, the 1 -> 2 worker scaling, where the time goes
(the driver's hashing and reassembly, the tasks) and a paper calculation of a larger
cluster from the measured per-partition cost.

Without ``--address`` the run starts a one-machine Ray cluster in this process (2 CPUs,
300 MB object store) and stops it; with ``--address`` it joins that cluster.

``serving``: ``benchmarks/scale_serving.py`` (two server processes behind the balancer
against one), when present.

    python benchmarks/scale.py [--parts offline,serving] [--address HOST:PORT] [--quick]
        [--reps N] [--sizes ROWS,ROWS]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd

from driftloop import __version__
from driftloop.compute import BatchFunction, BatchSource, Engine, LocalEngine, RayEngine
from driftloop.features import Entity, FeatureStore, FeatureView, Field, ParquetSource

T = TypeVar("T")
R = TypeVar("R")

DAYS = 30
START = pd.Timestamp("2025-01-01")
VIEWS = [("account_a", 6, 2), ("account_b", 6, 7)]  # name, features, ttl (days)
FULL_SIZES = (1_000_000, 10_000_000)
QUICK_SIZES = (200_000, 1_000_000)
PAPER_WORKERS = (4, 8, 16, 32, 64)
# Above this many entity rows a full run pairs one run, not three: at 10M rows a paired run
# (local, 1 worker, 2 workers) took 10-20 min on the shared 2-core machine, three did not
# finish in 30 min.
BIG_ROWS = 1_000_000


def make_data(folder: Path, rows: int) -> pd.DataFrame:
    """One feature row per entity row in each view (``rows // 10`` entities); the entity
    frame."""
    rng = np.random.default_rng(3)
    entities = max(rows // 10, 1)
    for name, features, _ in VIEWS:
        seconds = rng.integers(0, DAYS * 86_400, rows)
        frame = pd.DataFrame(
            {
                "account_id": rng.integers(0, entities, rows),
                "ts": START + pd.to_timedelta(seconds, unit="s"),
                "created": START + pd.to_timedelta(seconds + rng.integers(0, 600, rows), unit="s"),
            }
        )
        for j in range(features):
            frame[f"{name}_f{j}"] = rng.normal(size=rows)
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    seconds = rng.integers(86_400, (DAYS + 1) * 86_400, rows)
    return pd.DataFrame(
        {
            "account_id": rng.integers(0, entities, rows),
            "event_timestamp": START + pd.to_timedelta(seconds, unit="s"),
        }
    )


def definitions(folder: Path) -> list[Any]:
    account = Entity("account", ["account_id"])
    views = [
        FeatureView(
            name,
            [account],
            ParquetSource(str(folder / f"{name}.parquet")),
            "ts",
            created_timestamp_field="created",
            ttl=f"{ttl}d",
            schema=[Field(f"{name}_f{j}") for j in range(n)],
        )
        for name, n, ttl in VIEWS
    ]
    return [account, *views]


def feature_names() -> list[str]:
    return [f"{name}_f{j}" for name, n, _ in VIEWS for j in range(n)]


class TimedEngine:
    """An engine that records how long its ``map`` calls take (the tasks' part of a job;
    the rest is the driver's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name
        self.map_seconds = 0.0

    @property
    def workers(self) -> int:
        return self.engine.workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        started = time.perf_counter()
        try:
            return self.engine.map(fn, items)
        finally:
            self.map_seconds += time.perf_counter() - started

    def map_batches(
        self,
        make_fn: Callable[[], BatchFunction],
        source: str | Sequence[str] | BatchSource,
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        return self.engine.map_batches(make_fn, source, destination, batch_rows=batch_rows)

    def close(self) -> None:
        self.engine.close()


def build(folder: Path, entity: pd.DataFrame, engine: Engine, parts: int) -> tuple[Any, float]:
    store = FeatureStore(definitions=definitions(folder), engine=engine, partitions=parts)
    try:
        started = time.perf_counter()
        frame = store.training_frame(entity, feature_names(), output="arrow")
        return frame, time.perf_counter() - started
    finally:
        store.close()


def same_frame(got: Any, want: Any) -> bool:
    """Equal row for row (floats to 1e-12: see tests/partition_world.py)."""
    if not got.schema.equals(want.schema):
        return False
    try:
        pd.testing.assert_frame_equal(
            got.to_pandas(), want.to_pandas(), check_exact=False, rtol=1e-12, atol=1e-12
        )
    except AssertionError:
        return False
    return True


def scan_seconds(folder: Path, parts: int) -> float:
    """What every partition pays whatever its share of rows: reading each view's whole
    Parquet file and keeping its keys' slice (one thread, as a Ray task has)."""
    con = duckdb.connect()
    con.execute("SET threads = 1")
    started = time.perf_counter()
    for name, _, _ in VIEWS:
        con.sql(
            f"SELECT count(*), sum({name}_f0) FROM read_parquet('{folder / name}.parquet') "
            f"WHERE hash(CAST(account_id AS DOUBLE)) % {parts} = 0"
        ).fetchall()
    con.close()
    return time.perf_counter() - started


def run_offline(
    *,
    quick: bool,
    reps: int | None,
    address: str | None = None,
    sizes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Local DuckDB frame against Ray partitions at 1 and 2 workers (see the module docs);
    ``reps`` paired runs per size (unset: one with ``--quick`` or above 1M rows, three
    otherwise)."""
    sizes = tuple(sizes or (QUICK_SIZES if quick else FULL_SIZES))
    cluster = RayEngine(address or "local", num_cpus=2, object_store_mb=300)
    ray = cluster.connect()
    engines = {
        workers: RayEngine(address or "local", concurrency=workers, max_retries=3)
        for workers in (1, 2)
    }
    results: list[dict[str, Any]] = []
    try:
        print(f"Ray cluster: {int(ray.cluster_resources().get('CPU', 0))} CPUs")
        for rows in sizes:
            with tempfile.TemporaryDirectory(prefix="dl-scale-") as tmp:
                folder = Path(tmp)
                made = time.perf_counter()
                entity = make_data(folder, rows)
                print(f"\n{rows:,} entity rows ({time.perf_counter() - made:.1f} s to make data)")
                runs = reps or (1 if quick or rows > BIG_ROWS else 3)
                results.append(_one_size(folder, entity, engines, runs))
    finally:
        cluster.close()
    return {"sizes": results}


def _one_size(
    folder: Path, entity: pd.DataFrame, engines: dict[int, RayEngine], reps: int
) -> dict[str, Any]:
    parts = 2  # one partition per worker of the 2-worker run, the same cut for both runs
    local_times, ray_times = [], {w: [] for w in engines}  # type: dict[int, list[float]]
    map_times: dict[int, list[float]] = {w: [] for w in engines}
    equal = True
    for _ in range(reps):  # paired, back to back: local, 1 worker, 2 workers
        want, seconds = build(folder, entity, LocalEngine(), 1)
        local_times.append(seconds)
        for workers, engine in engines.items():
            timed = TimedEngine(engine)
            got, seconds = build(folder, entity, timed, parts)
            ray_times[workers].append(seconds)
            map_times[workers].append(timed.map_seconds)
            equal = equal and same_frame(got, want)
            del got
        del want
        runs = ", ".join(f"{w} worker(s) {ray_times[w][-1]:.2f} s" for w in engines)
        print(f"  run {len(local_times)}: local {local_times[-1]:.2f} s, {runs}", flush=True)
    local = statistics.median(local_times)
    one, two = (statistics.median(ray_times[w]) for w in (1, 2))
    tasks_one = statistics.median(map_times[1])
    driver = statistics.median([t - m for t, m in zip(ray_times[2], map_times[2], strict=True)])
    scan = scan_seconds(folder, parts)
    per_part = tasks_one / parts  # one worker runs the partitions one after the other
    join = max(per_part - scan, 0.0)  # the part of a partition that shrinks with its rows
    load = os.getloadavg()[0]
    print(f"  local DuckDB frame       {local:7.2f} s   (spread {_spread(local_times)})")
    for w, t in ((1, one), (2, two)):
        print(f"  Ray, {w} worker(s)         {t:7.2f} s   {t / local:5.2f}x local")
    print(f"  scaling 1 -> 2 workers   {one / two:5.2f}x   frames equal: {equal}")
    print(
        f"  per partition: {per_part:.2f} s ({scan:.2f} s scanning whole sources, "
        f"{join:.2f} s joining its half); driver {driver:.2f} s (hash, ship, reassemble)"
    )
    rows = len(entity)
    paper = {
        w: driver + scan + join * parts / w  # W partitions of rows/W each, all at once
        for w in PAPER_WORKERS
    }
    print(
        "  paper, W workers with W partitions (driver + scan + join/W): "
        + ", ".join(f"{w}: {t:.1f} s" for w, t in paper.items())
    )
    print(f"  load average {load:.2f}")
    return {
        "entity_rows": rows,
        "local_s": local,
        "ray_1_worker_s": one,
        "ray_2_workers_s": two,
        "ratio_1_worker_to_local": one / local,
        "ratio_2_workers_to_local": two / local,
        "scaling_1_to_2": one / two,
        "frames_equal": equal,
        "per_partition_s": per_part,
        "scan_per_partition_s": scan,
        "driver_s": driver,
        "paper_s": paper,
        "local_runs": local_times,
        "ray_runs": ray_times,
        "load_average": load,
    }


def _spread(times: Sequence[float]) -> str:
    return f"{min(times):.2f}-{max(times):.2f}"


def run_serving(*, quick: bool, reps: int | None, address: str | None = None) -> dict[str, Any]:
    """Two server processes behind the balancer against one (benchmarks/scale_serving.py)."""
    reps = reps or (1 if quick else 3)
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        serving = importlib.import_module("scale_serving")
    except ImportError:
        print("The serving part is not available here (benchmarks/scale_serving.py is absent).")
        return {"available": False}
    seconds = 5.0 if quick else 10.0  # scale_serving.py's own defaults
    result = dict(serving.run(quick=quick, reps=reps, seconds=seconds, workers=1))
    for arm, figures in result.get("arms", {}).items():
        rps, p99 = figures.get("rps", 0.0), figures.get("p99_ms", 0.0)
        failed = f"  FAILED: {figures['failed']}" if figures.get("failed") else ""
        print(f"  {arm:8s} {rps:9,.0f} rps   p99 {p99:7.1f} ms{failed}")
    ratio = result.get("ratios", {}).get("two_lb_over_one_rps")
    if ratio is not None:
        print(f"  two processes behind the balancer / one process alone: {ratio:.2f}x")
    return result


PARTS: dict[str, Callable[..., dict[str, Any]]] = {"offline": run_offline, "serving": run_serving}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="offline,serving")
    parser.add_argument("--address", default=None, help="a Ray cluster (default: start one)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one rep")
    parser.add_argument(
        "--reps", type=int, default=None, help="paired runs per size (default: 3; 1 above 1M rows)"
    )
    parser.add_argument("--sizes", default=None, help="entity rows, comma separated")
    args = parser.parse_args()
    reps = args.reps  # unset: each part's default
    result: dict[str, Any] = {
        "driftloop": __version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "quick": args.quick,
        "reps": reps,
    }
    for part in args.parts.split(","):
        if part not in PARTS:
            parser.error(f"--parts: unknown part {part!r}; known: {', '.join(PARTS)}")
        print(f"== {part}")
        options: dict[str, Any] = {"quick": args.quick, "reps": reps, "address": args.address}
        if part == "offline" and args.sizes:
            options["sizes"] = [int(s) for s in args.sizes.split(",")]
        result[part] = PARTS[part](**options)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
