"""How long does the training pipeline take, per step, on a million rows?

Baseline in the same run: the bare LightGBM fit of the same training split (what a plain
script spends at minimum), so the ratio shows the pipeline's overhead (loading, the
training set, the data gate, checkpoints, evaluation, gates, registration). Also timed:
the rerun of the finished pipeline (every step found in its checkpoint).

``--mode store`` (default): the fraud example (``driftloop init --example fraud``) over
simulated transactions: point-in-time window features from the feature store.
``--mode table``: a generated table of loan applications read from Parquet, with numbers,
booleans, text categories and missing values (any tabular model's path).

    python benchmarks/training_pipeline.py [--quick] [--mode store|table] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from driftloop import __version__
from driftloop.core.config import load_settings
from driftloop.data import FRAUD_MODEL_TOML, simulate_transactions
from driftloop.features import FeatureStore, example_features_py, load_definitions
from driftloop.registry import Signature, encode_frame
from driftloop.training import TrainingPipeline, default_estimator

TABLE_TOML = """
[models.loans]
data = "data/applications.parquet"
label = "repaid"
timestamp = "applied_at"
id = "application_id"
"""


def _table(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.4, rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    owns = rng.random(rows) < 0.45
    signal = (np.log(income) - 10.5) * 2 + np.where(owns, 0.8, -0.4) + rng.normal(0, 0.8, rows)
    signal += np.where(region == "north", 0.5, 0.0)
    return pd.DataFrame(
        {
            "application_id": np.arange(rows),
            "applied_at": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(np.sort(rng.uniform(0, 90 * 86_400, rows)), unit="s"),
            "income": np.where(rng.random(rows) < 0.05, np.nan, income),
            "age": rng.integers(18, 80, rows).astype(float),
            "owns_home": owns,
            "channel": rng.choice(["web", "app", "branch"], rows),
            "region": region,
            "repaid": np.where(signal > 0, "yes", "no"),
        }
    )


def _project(work: Path, mode: str, name: str, rows: int) -> tuple[Any, str, FeatureStore | None]:
    root = work / name
    root.mkdir()
    (root / "data").symlink_to(work / "data")
    if mode == "store":
        (root / "driftloop.toml").write_text(FRAUD_MODEL_TOML)
        (root / "features.py").write_text(example_features_py())
        settings = load_settings(root / "driftloop.toml", environ={})
        store = FeatureStore(settings, definitions=load_definitions(root / "features.py"))
        return settings, "fraud", store
    (root / "driftloop.toml").write_text(TABLE_TOML)
    return load_settings(root / "driftloop.toml", environ={}), "loans", None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="about 100k rows, not 1M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", choices=("store", "table"), default="store")
    args = parser.parse_args()
    threads = 2
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    (work / "data").mkdir()
    if args.mode == "store":
        customers, days = (1_000, 50) if args.quick else (5_000, 100)
        sim = simulate_transactions(customers=customers, terminals=10_000, days=days, seed=1)
        sim.write(work / "data")
        n = len(sim.transactions)
        del sim
    else:
        n = 100_000 if args.quick else 1_000_000
        _table(n).to_parquet(work / "data" / "applications.parquet", index=False)
    per_step: dict[str, list[float]] = {}
    totals, reruns, fits = [], [], []
    metrics: dict[str, Any] = {}
    for repeat in range(args.repeats):
        settings, model, store = _project(work, args.mode, f"project{repeat}", n)
        options: dict[str, Any] = {"threads": threads, "store": store}
        pipeline = TrainingPipeline.from_settings(settings, model, **options)
        started = time.perf_counter()
        result = pipeline.run()
        totals.append(time.perf_counter() - started)
        for step in result.steps:
            per_step.setdefault(step.name, []).append(step.seconds)
        started = time.perf_counter()
        again = TrainingPipeline.from_settings(settings, model, **options).run()
        reruns.append(time.perf_counter() - started)
        assert again.ran == []
        if store is not None:
            store.close()
        keys = {s.name: s.key for s in result.steps}
        split = pipeline.store_.get("split", keys["split"])
        built = pipeline.store_.get("training_set", keys["training_set"])
        assert split is not None
        assert built is not None
        signature = Signature.from_json(built["signature"])
        train = split["train"]
        matrix = encode_frame(signature, train).matrix
        categorical = [j for j, f in enumerate(signature.features) if f.kind == "category"]
        started = time.perf_counter()
        default_estimator("binary", 0, threads).fit(
            matrix, train[signature.label or ""], categorical_feature=categorical
        )
        fits.append(time.perf_counter() - started)
        metrics = dict(result.metrics)
    total, fit = statistics.median(totals), statistics.median(fits)
    print(f"training pipeline on {n:,} rows ({args.repeats} runs, {threads} threads, {args.mode})")
    for name, seconds in per_step.items():
        print(f"  {name:<13} median {statistics.median(seconds):7.2f} s")
    print(f"  {'total':<13} median {total:7.2f} s (min {min(totals):.2f}, max {max(totals):.2f})")
    print(f"baseline: bare LightGBM fit of the same split, median {fit:.2f} s")
    print(f"ratio pipeline / bare fit: {total / fit:.2f}x")
    print(f"rerun of the finished pipeline (all cached): median {statistics.median(reruns):.2f} s")
    print(f"test ROC AUC {metrics['roc_auc']:.4f}, load average {os.getloadavg()[0]:.1f}")
    out = Path(__file__).parent / "results" / f"training_pipeline_{args.mode}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": n,
                "mode": args.mode,
                "steps_median_s": {k: statistics.median(v) for k, v in per_step.items()},
                "total_s": totals,
                "bare_fit_s": fits,
                "rerun_s": reruns,
                "ratio_total_over_fit": total / fit,
                "roc_auc": metrics["roc_auc"],
                "driftloop": __version__,
                "lightgbm": lgb.__version__,
                "python": platform.python_version(),
                "cores": os.cpu_count(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
