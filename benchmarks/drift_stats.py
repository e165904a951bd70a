"""How fast are driftloop's drift statistics, and how do they compare with Evidently?

Part 1: REF x CUR rows x FEATURES numeric features (default 1,000,000 x 1,000,000 x 50):
time per statistic, against a reference profile computed once (training time) and sample
against sample (the whole reference kept); KS statistics checked equal to
``scipy.stats.ks_2samp`` to 1e-12.

Part 2: the same kind of data at 100,000 x 50 through Evidently's ``DataDriftPreset`` in
its own virtual environment (created under a temporary folder by this script, ``pip
install evidently``) and through driftloop (all six statistics, sample against sample,
including profiling the reference), in the same run; prints the ratio.

    python benchmarks/drift_stats.py [--quick] [--skip-evidently]
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy import stats

import driftloop
from driftloop.stats import (
    JensenShannon,
    KLDivergence,
    NumericPair,
    PopulationStabilityIndex,
    Profile,
    Wasserstein,
    compare_frames,
    compare_to_profile,
    default_statistics,
)

console = Console()
RESULTS = Path(__file__).parent / "results"

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    snapshot.dict()
    times.append(time.perf_counter() - t)
import evidently
print(json.dumps({"times": times, "version": evidently.__version__}))
"""


def make_frames(rows_ref: int, rows_cur: int, features: int, seed: int = 0):
    """Mixed shapes (normal, lognormal, exponential, uniform, integer with ties); every
    fifth feature shifted in the current frame."""
    rng = np.random.default_rng(seed)

    def column(kind: int, n: int, shift: float) -> np.ndarray:
        if kind == 0:
            return rng.normal(shift, 1, n)
        if kind == 1:
            return rng.lognormal(3 + shift, 1, n)
        if kind == 2:
            return rng.exponential(1 + shift, n)
        if kind == 3:
            return rng.uniform(shift, 1 + shift, n)
        return rng.poisson(3 + 3 * shift, n).astype(np.float64)

    ref = pd.DataFrame({f"f{i:02d}": column(i % 5, rows_ref, 0.0) for i in range(features)})
    cur = pd.DataFrame(
        {f"f{i:02d}": column(i % 5, rows_cur, 0.2 if i % 5 == 0 else 0.0) for i in range(features)}
    )
    return ref, cur


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def per_statistic(profile: Profile, cur: pd.DataFrame, repeat: int) -> dict[str, list[float]]:
    """Seconds per stage: preparation (sort + bin), the shared ECDF pass, each statistic."""
    out: dict[str, list[float]] = {}
    profiles = list(profile.numeric.values())
    for _ in range(repeat):
        t = time.perf_counter()
        pair = NumericPair.build(profiles, cur)
        out.setdefault("prepare (sort + bin window)", []).append(time.perf_counter() - t)
        t = time.perf_counter()
        pair.ecdf()
        out.setdefault("ECDF pass (KS + Wasserstein)", []).append(time.perf_counter() - t)
        for stat in default_statistics():
            if "numeric" not in stat.kinds:
                continue
            t = time.perf_counter()
            stat.compute(pair)
            out.setdefault(stat.name, []).append(time.perf_counter() - t)
    return out


def check_ks(ref: pd.DataFrame, cur: pd.DataFrame, table, columns: list[str]) -> float:
    worst = 0.0
    names = table.numeric.names
    for name in columns:
        expected = stats.ks_2samp(ref[name].to_numpy(), cur[name].to_numpy()).statistic
        got = table.results["ks"].values[names.index(name)]
        worst = max(worst, abs(float(got) - float(expected)))
    return worst


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="driftloop-evidently-") as tmp:
        folder = Path(tmp)
        venv = folder / "venv"
        console.print("creating a virtual environment for Evidently (pip install evidently)...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            # evidently 0.7 does not import under pandas 3
            [str(venv / "bin" / "pip"), "install", "-q", "evidently", "pandas<3"],
            check=True,
            capture_output=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        ref.to_parquet(folder / "ref.parquet")
        cur.to_parquet(folder / "cur.parquet")
        (folder / "bench.py").write_text(EVIDENTLY_SCRIPT)
        done = subprocess.run(
            [
                str(venv / "bin" / "python"),
                str(folder / "bench.py"),
                str(folder / "ref.parquet"),
                str(folder / "cur.parquet"),
                str(repeat),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])


def summary(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k x 200k x 20, 20k for Evidently")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--features", type=int, default=None)
    parser.add_argument("--evidently-rows", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    features = args.features or (20 if args.quick else 50)
    ev_rows = args.evidently_rows or (20_000 if args.quick else 100_000)
    result: dict[str, Any] = {
        "driftloop_version": driftloop.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "features": features,
        "repeat": args.repeat,
        "note": "shared 2-core machine, loaded by other work",
    }

    console.print(f"[bold]Part 1[/]: {rows:,} reference x {rows:,} current x {features} features")
    ref, cur = make_frames(rows, rows, features)
    t_profile, profile = timed(lambda: Profile.from_frame(ref), 1)
    t_full, full = timed(lambda: Profile.from_frame(ref, sample_size=rows), 1)
    table = Table(
        "stage",
        "vs profile (5k sample) s",
        "sample vs sample s",
        title="time per statistic, median of repeats",
    )
    vs_profile = per_statistic(profile, cur, args.repeat)
    vs_sample = per_statistic(full, cur, args.repeat)
    for stage in vs_profile:
        table.add_row(
            stage,
            f"{statistics.median(vs_profile[stage]):.3f}",
            f"{statistics.median(vs_sample[stage]):.3f}",
        )
    total_p = sum(statistics.median(v) for v in vs_profile.values())
    total_s = sum(statistics.median(v) for v in vs_sample.values())
    table.add_row("[bold]all statistics", f"{total_p:.3f}", f"{total_s:.3f}")
    table.add_row(
        "profile the reference (once, training time)", f"{t_profile[0]:.3f}", f"{t_full[0]:.3f}"
    )
    console.print(table)
    check_cols = list(ref.columns) if args.quick else list(ref.columns[:5])
    sample_table = compare_frames(ref[check_cols], cur[check_cols])
    worst = check_ks(ref, cur, sample_table, check_cols)
    console.print(
        f"KS statistic vs scipy.stats.ks_2samp over {len(check_cols)} features "
        f"({rows:,} x {rows:,}): max |diff| = {worst:.2e} (must be <= 1e-12)"
    )
    result["part1"] = {
        "vs_profile": {k: summary(v) for k, v in vs_profile.items()},
        "sample_vs_sample": {k: summary(v) for k, v in vs_sample.items()},
        "all_vs_profile_s": total_p,
        "all_sample_vs_sample_s": total_s,
        "profile_reference_s": t_profile[0],
        "profile_reference_full_sample_s": t_full[0],
        "ks_max_abs_diff_vs_scipy": worst,
        "ks_checked_features": len(check_cols),
    }
    del ref, cur, full, profile

    console.print(
        f"\n[bold]Part 2[/]: {ev_rows:,} x {ev_rows:,} x {features}, driftloop vs "
        "Evidently DataDriftPreset"
    )
    ref, cur = make_frames(ev_rows, ev_rows, features, seed=1)
    same = [PopulationStabilityIndex(), Wasserstein(), JensenShannon(), KLDivergence()]
    ref_profile = Profile.from_frame(ref)
    runs = {
        "per window vs reference profile, all 6 statistics": lambda: compare_to_profile(
            ref_profile, cur
        ),
        "sample vs sample, Evidently's statistics (Wasserstein) + PSI, JS, KL": lambda: (
            compare_frames(ref, cur, statistics=same)
        ),
        "sample vs sample, all 6 statistics (KS p-values as scipy)": lambda: compare_frames(
            ref, cur
        ),
    }
    dl: dict[str, list[float]] = {}
    for name, fn in runs.items():
        dl[name], _ = timed(fn, args.repeat)
    dl_table = compare_frames(ref, cur)
    ks_diff = check_ks(ref, cur, dl_table, list(ref.columns))
    result["part2"] = {
        "rows": ev_rows,
        "driftloop_s": {k: summary(v) for k, v in dl.items()},
        "ks_max_abs_diff_vs_scipy": ks_diff,
    }
    console.print(f"KS vs scipy over all {features} features: max |diff| = {ks_diff:.2e}")
    ev_median = None
    if not args.skip_evidently:
        ev = run_evidently(ref, cur, args.repeat)
        ev_median = statistics.median(ev["times"])
        result["part2"].update(
            {"evidently_version": ev["version"], "evidently_s": summary(ev["times"])}
        )
    table = Table(
        "run",
        "median s",
        "min-max s",
        "Evidently / driftloop",
        title=f"{ev_rows:,} x {ev_rows:,} x {features}, median of {args.repeat}",
    )
    speedups: dict[str, float] = {}
    for name, times in dl.items():
        med = statistics.median(times)
        ratio = ev_median / med if ev_median else float("nan")
        speedups[name] = ratio
        colour = "green" if ratio >= 30 else "red"
        table.add_row(
            f"driftloop: {name}",
            f"{med:.3f}",
            f"{min(times):.3f}-{max(times):.3f}",
            f"[{colour}]{ratio:.0f}x[/]" if ev_median else "-",
        )
    if ev_median:
        table.add_row(
            f"Evidently {ev['version']} DataDriftPreset",
            f"{ev_median:.3f}",
            f"{min(ev['times']):.3f}-{max(ev['times']):.3f}",
            "1x",
        )
    result["part2"]["speedup"] = speedups
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "drift_stats.json"
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
