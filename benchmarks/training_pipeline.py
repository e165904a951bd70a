"""How long does the training pipeline take on 1,000,000 simulated transactions, per step?

Baseline in the same run: the bare LightGBM fit of the same training split (what a
plain script spends at minimum), so the ratio shows the pipeline's overhead (loading,
validation, features, checkpoints, evaluation, gates, registration). Also timed: the
rerun of the finished pipeline (every step found in its checkpoint).

``--features store`` builds the training set with the feature store's point-in-time frame
(the example definitions over the same data) instead of the per-row pandas features.

    python benchmarks/training_pipeline.py [--quick] [--features rows|store]
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

from driftloop import __version__
from driftloop.core.config import load_settings
from driftloop.data import simulate_transactions
from driftloop.features import transaction_feature_store
from driftloop.training import TrainingPipeline, default_estimator, feature_store_frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="about 100k transactions, not 1M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--features", choices=("rows", "store"), default="rows")
    args = parser.parse_args()
    customers, days = (1_000, 50) if args.quick else (5_000, 100)
    threads = 2
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    sim = simulate_transactions(customers=customers, terminals=10_000, days=days, seed=1)
    sim.write(work / "data")
    n = len(sim.transactions)
    del sim
    per_step: dict[str, list[float]] = {}
    totals, reruns, fits = [], [], []
    for repeat in range(args.repeats):
        root = work / f"project{repeat}"
        root.mkdir()
        settings = load_settings(root=root, environ={})
        options: dict[str, Any] = {"threads": threads}
        store = None
        if args.features == "store":
            store = transaction_feature_store(work / "data", settings=settings)
            options["training_frame"] = feature_store_frame(store)
        pipeline = TrainingPipeline(settings, work / "data", **options)
        started = time.perf_counter()
        result = pipeline.run()
        totals.append(time.perf_counter() - started)
        for step in result.steps:
            per_step.setdefault(step.name, []).append(step.seconds)
        started = time.perf_counter()
        again = TrainingPipeline(settings, work / "data", **options).run()
        reruns.append(time.perf_counter() - started)
        if store is not None:
            store.close()
        assert again.ran == []
        split = pipeline.store.get("split", result.steps[3].key)
        features = pipeline.store.get("training_set", result.steps[2].key)
        assert split is not None
        assert features is not None
        train, names = split["train"], features["features"]
        started = time.perf_counter()
        default_estimator(0, threads).fit(train[names], train["is_fraud"])
        fits.append(time.perf_counter() - started)
        metrics = result.metrics
    total, fit = statistics.median(totals), statistics.median(fits)
    print(
        f"training pipeline on {n:,} transactions ({args.repeats} runs, {threads} threads, "
        f"features: {args.features})"
    )
    for name, seconds in per_step.items():
        print(f"  {name:<13} median {statistics.median(seconds):7.2f} s")
    print(f"  {'total':<13} median {total:7.2f} s (min {min(totals):.2f}, max {max(totals):.2f})")
    print(f"baseline: bare LightGBM fit of the same split, median {fit:.2f} s")
    print(f"ratio pipeline / bare fit: {total / fit:.2f}x")
    print(f"rerun of the finished pipeline (all cached): median {statistics.median(reruns):.2f} s")
    print(f"test ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f}")
    suffix = "" if args.features == "rows" else "_store"
    out = Path(__file__).parent / "results" / f"training_pipeline{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "transactions": n,
                "features": args.features,
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
