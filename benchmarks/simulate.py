"""How long does the simulator take for a million transactions?

Baseline in the same run: a per-transaction Python loop over the same profiles (the
handbook's reference implementation generates transactions with ``for`` loops), timed on
a slice and scaled, so the ratio shows what vectorising buys.

    python benchmarks/simulate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from driftloop import __version__
from driftloop.data import Scenario, simulate_transactions


def loop_baseline(customers: int, days: int, seed: int) -> float:
    """Transactions per second of a per-transaction Python loop (handbook style)."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(5, 100, customers)
    per_day = rng.uniform(0, 4, customers)
    started, n = time.perf_counter(), 0
    for c in range(customers):
        for _day in range(days):
            for _ in range(rng.poisson(per_day[c])):
                t = rng.normal(43_200, 20_000)
                amount = rng.normal(mean[c], mean[c] / 2)
                if amount < 0:
                    amount = rng.uniform(0, 2 * mean[c])
                n += 1 if 0 <= t < 86_400 else 0
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100k transactions, not 1M")
    args = parser.parse_args()
    customers, days = (2_000, 25) if args.quick else (10_000, 50)
    scenario = Scenario(customers=customers, terminals=10_000, days=days, seed=1)
    runs, n = [], 0
    for _ in range(3):
        started = time.perf_counter()
        n = len(simulate_transactions(scenario).transactions)
        runs.append(time.perf_counter() - started)
    median = statistics.median(runs)
    loop_rate = statistics.median(loop_baseline(300, days, s) for s in range(3))
    ours_rate = n / median
    print(
        f"simulate {n:,} transactions: median {median:.2f} s "
        f"(min {min(runs):.2f}, max {max(runs):.2f}) = {ours_rate:,.0f} tx/s"
    )
    print(f"per-transaction Python loop (handbook style): {loop_rate:,.0f} tx/s")
    print(f"ratio vectorised / loop: {ours_rate / loop_rate:.0f}x")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "simulate.json").write_text(
        json.dumps(
            {
                "driftloop": __version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
                "cores": os.cpu_count(),
                "transactions": n,
                "seconds": runs,
                "tx_per_s": ours_rate,
                "loop_tx_per_s": loop_rate,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
