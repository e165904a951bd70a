"""How fast is a point-in-time training frame, against the joins people write by hand?

1,000,000 entity rows x 3 feature views (10,000,000 feature rows, 100,000 entities, 20
features), each view with a TTL and a created-timestamp cutoff. Baselines in the same run:

- a raw DuckDB ASOF join of the same Parquet files (TTL and created cutoff as CASE
  expressions, no fallback to the earlier row, no order restored): our overhead must stay
  under 1.5x;
- pandas ``merge_asof`` per view, including its sorts (data already in memory);
- Feast ``get_historical_features`` (local provider, file offline store) on a 100,000-row
  entity frame, in its own virtual environment made under a temporary folder
  (``pip install feast``): driftloop must be at least 50x faster.

    python benchmarks/features_training.py [--quick] [--no-feast] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from driftloop import __version__
from driftloop.features import Entity, FeatureStore, FeatureView, Field, ParquetSource

DAYS = 30
START = pd.Timestamp("2025-01-01")
# name, share of feature rows, features, ttl (days)
VIEWS = [("user_a", 0.4, 7, 2), ("user_b", 0.3, 7, 7), ("user_c", 0.3, 6, 1)]


def make_data(folder: Path, feature_rows: int, entities: int, entity_rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    for name, share, n_features, _ in VIEWS:
        n = int(feature_rows * share)
        seconds = rng.integers(0, DAYS * 86_400, n)
        frame = pd.DataFrame(
            {
                "entity_id": rng.integers(0, entities, n),
                "ts": START + pd.to_timedelta(seconds, unit="s"),
                "created": START + pd.to_timedelta(seconds + rng.integers(0, 600, n), unit="s"),
            }
        )
        for j in range(n_features):
            frame[f"{name}_f{j}"] = rng.normal(size=n)
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    seconds = rng.integers(86_400, (DAYS + 1) * 86_400, entity_rows)
    return pd.DataFrame(
        {
            "entity_id": rng.integers(0, entities, entity_rows),
            "event_timestamp": START + pd.to_timedelta(seconds, unit="s"),
            "label": rng.integers(0, 2, entity_rows),
        }
    )


def feature_names() -> list[str]:
    return [f"{name}_f{j}" for name, _, n, _ in VIEWS for j in range(n)]


def driftloop_store(folder: Path) -> FeatureStore:
    entity = Entity("user", ["entity_id"])
    views = [
        FeatureView(
            name,
            [entity],
            ParquetSource(str(folder / f"{name}.parquet")),
            "ts",
            created_timestamp_field="created",
            ttl=f"{ttl}d",
            schema=[Field(f"{name}_f{j}") for j in range(n)],
        )
        for name, _, n, ttl in VIEWS
    ]
    return FeatureStore(definitions=views)


def raw_duckdb(con: duckdb.DuckDBPyConnection, folder: Path) -> Any:
    cols, joins = [], []
    for i, (name, _, n, ttl) in enumerate(VIEWS):
        t = "e.event_timestamp"
        keep = f"v{i}.ts >= {t} - INTERVAL {ttl} DAY AND v{i}.created <= {t}"
        cols += [f"CASE WHEN {keep} THEN v{i}.{name}_f{j} END AS {name}_f{j}" for j in range(n)]
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{folder / name}.parquet') v{i} "
            f"ON e.entity_id = v{i}.entity_id AND e.event_timestamp >= v{i}.ts"
        )
    sql = f"SELECT e.*, {', '.join(cols)} FROM entity_df e {' '.join(joins)}"
    return con.sql(sql).to_arrow_table()


def pandas_asof(entity_df: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out = entity_df.sort_values("event_timestamp")
    for name, _, n, ttl in VIEWS:
        view = frames[name].sort_values("ts")
        out = pd.merge_asof(
            out,
            view,
            left_on="event_timestamp",
            right_on="ts",
            by="entity_id",
            tolerance=pd.Timedelta(days=ttl),
            direction="backward",
        )
        late = out["created"] > out["event_timestamp"]
        out.loc[late, [f"{name}_f{j}" for j in range(n)]] = np.nan
        out = out.drop(columns=["ts", "created"])
    return out


FEAST_SCRIPT = """
import sys, time, datetime
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64
from feast.value_type import ValueType

repo, data, entity_path, views = sys.argv[1], sys.argv[2], sys.argv[3], eval(sys.argv[4])
store = FeatureStore(repo_path=repo)
user = Entity(name="user", join_keys=["entity_id"], value_type=ValueType.INT64)
fvs = []
for name, _, n, ttl in views:
    src = FileSource(path=f"{data}/{name}.parquet", timestamp_field="ts",
                     created_timestamp_column="created")
    fvs.append(FeatureView(name=name, entities=[user], ttl=datetime.timedelta(days=ttl),
                           schema=[Field(name=f"{name}_f{j}", dtype=Float64) for j in range(n)],
                           source=src))
store.apply([user, *fvs])
entity_df = pd.read_parquet(entity_path)
refs = [f"{name}:{name}_f{j}" for name, _, n, _ in views for j in range(n)]
started = time.perf_counter()
frame = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
print(time.perf_counter() - started, len(frame))
"""


def feast_venv(base: Path) -> Path | None:
    venv = base / "feast-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print("making a Feast venv (pip install feast) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "feast"], check=False)
        if done.returncode != 0:
            return None
    return python


def run_feast(python: Path, base: Path, folder: Path, entity_df: pd.DataFrame) -> float | None:
    repo = base / "feast-repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: bench
            registry: {repo}/registry.db
            provider: local
            online_store:
              type: sqlite
              path: {repo}/online.db
            offline_store:
              type: file
            """
        )
    )
    entity_path = folder / "entity_feast.parquet"
    entity_df.to_parquet(entity_path, index=False)
    script = base / "feast_bench.py"
    script.write_text(FEAST_SCRIPT)
    done = subprocess.run(
        [str(python), str(script), str(repo), str(folder), str(entity_path), repr(VIEWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print("Feast failed:", done.stderr[-2_000:])
        return None
    return float(done.stdout.strip().splitlines()[-1].split()[0])


def timed(fns: list[Callable[[], Any]], reps: int) -> list[list[float]]:
    """Seconds per run of each function, interleaved (the machine's load hits all alike);
    one untimed warm-up run each."""
    for fn in fns:
        fn()
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, runs, strict=True):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    return runs


def fmt(runs: list[float]) -> str:
    return f"{statistics.median(runs):.2f} s (min {min(runs):.2f}, max {max(runs):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10x smaller everywhere")
    parser.add_argument("--no-feast", action="store_true", help="skip the Feast comparison")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    feature_rows, entities, entity_rows = 10_000_000 // scale, 100_000 // scale, 1_000_000 // scale
    feast_rows = 100_000 // scale
    base = Path(tempfile.gettempdir()) / "driftloop-bench"
    base.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        folder = Path(tmp)
        print(f"data: {feature_rows:,} feature rows, {entities:,} entities, {entity_rows:,} events")
        entity_df = make_data(folder, feature_rows, entities, entity_rows)
        store = driftloop_store(folder)
        features = feature_names()
        con = duckdb.connect()
        con.register("entity_df", entity_df)
        ours, raw = timed(
            [
                lambda: store.training_frame(entity_df, features, output="arrow"),
                lambda: raw_duckdb(con, folder),
            ],
            args.reps,
        )

        def read() -> dict[str, pd.DataFrame]:
            return {name: pd.read_parquet(folder / f"{name}.parquet") for name, *_ in VIEWS}

        frames = read()
        pandas_runs, pandas_read_runs = timed(
            [lambda: pandas_asof(entity_df, frames), lambda: pandas_asof(entity_df, read())],
            args.reps,
        )
        small = entity_df.iloc[:feast_rows]
        (ours_small,) = timed(
            [lambda: store.training_frame(small, features, output="arrow")], args.reps
        )
        feast_s = None
        if not args.no_feast:
            python = feast_venv(base)
            feast_s = run_feast(python, base, folder, small) if python else None
    result = {
        "driftloop": __version__,
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "feature_rows": feature_rows,
        "entities": entities,
        "entity_rows": entity_rows,
        "driftloop_s": ours,
        "raw_duckdb_asof_s": raw,
        "pandas_merge_asof_s": pandas_runs,
        "pandas_read_parquet_and_merge_asof_s": pandas_read_runs,
        "feast_entity_rows": feast_rows,
        "driftloop_small_s": ours_small,
        "feast_s": feast_s,
    }
    m = statistics.median
    print(f"driftloop training_frame ({entity_rows:,} rows, 20 features): {fmt(ours)}")
    print(f"raw DuckDB ASOF join, same data: {fmt(raw)}")
    print(f"pandas merge_asof incl. sorts (frames in memory): {fmt(pandas_runs)}")
    print(f"pandas read_parquet + merge_asof (same start as DuckDB): {fmt(pandas_read_runs)}")
    print(f"overhead vs raw DuckDB: {m(ours) / m(raw):.2f}x (must stay under 1.5x)")
    print(f"speed-up vs pandas in memory: {m(pandas_runs) / m(ours):.1f}x")
    print(f"speed-up vs pandas from Parquet: {m(pandas_read_runs) / m(ours):.1f}x")
    print(f"driftloop on {feast_rows:,} entity rows: {fmt(ours_small)}")
    if feast_s is not None:
        print(f"Feast get_historical_features on {feast_rows:,} rows: {feast_s:.2f} s")
        print(f"speed-up vs Feast: {feast_s / m(ours_small):.0f}x (target >= 50x)")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "features_training.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
