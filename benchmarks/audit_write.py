"""What does the SQLite audit log's schema cost per audited prediction?

Issue 18's (b) arm went from 78 to 119 us of CPU per request between 2026-12-02 and
2026-12-03. In a profile of the server under wrk the audit writer's inserts were the
largest part that grew; since then the schema gained the hourly route rollups (a0004: a
trigger that upserts ``audit_route_hours`` for every inserted row) and the tenant index
(a0005: ``(tenant, ts_us)``). This benchmark writes the same 64-row batches (4 per
commit, as the group-commit writer does under load, inline features, no entity keys, or
one entity key per row with ``--entities``) through ``SqlAuditLog.write_batches`` into
fresh logs, with the schema as it is and with the rollup trigger, the tenant index or
both dropped, and reports the writer thread's CPU time per row and each variant over
"as is" from the same repetition (arms interleaved; the machine is shared: read the
minimum and median, and the load average printed beside them).

    python benchmarks/audit_write.py [--quick] [--reps N] [--commits N] [--entities]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop import __version__
from driftloop.audit import AuditBatch, open_audit_log

FEATURES = [f"f{i:02d}" for i in range(20)]
ROWS, BATCHES_PER_COMMIT, WARM_COMMITS = 64, 4, 20
VARIANTS: dict[str, list[str]] = {
    "as is": [],
    "no rollup trigger": ["DROP TRIGGER audit_route_hours_insert"],
    "no tenant index": ["DROP INDEX audit_predictions_tenant"],
    "neither": ["DROP TRIGGER audit_route_hours_insert", "DROP INDEX audit_predictions_tenant"],
}


def commit_of(entities: bool, seq: int) -> list[AuditBatch]:
    """One commit's batches: ``ROWS`` predictions each, fresh ids, 20 features."""
    out = []
    for b in range(BATCHES_PER_COMMIT):
        keys = [
            {"card_id": f"c{(seq * 7919 + b * ROWS + i) % 500}"} if entities else {}
            for i in range(ROWS)
        ]
        out.append(
            AuditBatch(
                datetime.now(UTC),
                "fraud",
                "1",
                "v1",
                1.5,
                FEATURES,
                [[0.1 * i for i in range(20)]] * ROWS,
                [uuid.uuid4().hex for _ in range(ROWS)],
                [0.3] * ROWS,
                ["-"] * ROWS,
                keys,
                [{}] * ROWS,
            )
        )
    return out


def cpu_per_row(drops: list[str], commits: int, entities: bool) -> float:
    """Writer-thread CPU us per row over ``commits`` commits into a fresh log."""
    folder = Path(tempfile.mkdtemp(prefix="driftloop-audit-write-"))
    log = open_audit_log("sqlite:///audit.db", root=folder)
    con = sqlite3.connect(folder / "audit.db")
    for statement in drops:
        con.execute(statement)
    con.commit()
    con.close()
    work = [commit_of(entities, k) for k in range(WARM_COMMITS + commits)]
    for batches in work[:WARM_COMMITS]:
        log.write_batches(batches)
    started = time.thread_time()
    for batches in work[WARM_COMMITS:]:
        log.write_batches(batches)
    spent = time.thread_time() - started
    log.close()
    return 1e6 * spent / (commits * BATCHES_PER_COMMIT * ROWS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1 repetition of 50 commits")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5)")
    parser.add_argument("--commits", type=int, default=None, help="commits per arm (200)")
    parser.add_argument("--entities", action="store_true", help="one entity key per row")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 5)
    commits = args.commits or (50 if args.quick else 200)
    load = os.getloadavg()
    print(
        f"audit write: {reps} x {commits} commits of {BATCHES_PER_COMMIT} x {ROWS} rows, "
        f"entities {'on' if args.entities else 'off'}; load average {load[0]:.2f}",
        flush=True,
    )
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for rep in range(reps):
        order = list(VARIANTS) if rep % 2 == 0 else list(VARIANTS)[::-1]
        got = {name: cpu_per_row(VARIANTS[name], commits, args.entities) for name in order}
        for name in VARIANTS:
            runs[name].append(got[name])
            ratios[name].append(got[name] / got["as is"])
    print(f"{'schema':20} {'CPU us/row: median':>19} {'min':>7}  {'/ as is (median)':>17}")
    results: dict[str, Any] = {}
    for name in VARIANTS:
        median, low = statistics.median(runs[name]), min(runs[name])
        ratio = statistics.median(ratios[name])
        print(f"{name:20} {median:19.1f} {low:7.1f}  {100 * ratio:16.0f}%")
        results[name] = {"cpu_us_per_row": runs[name], "ratio_to_as_is": ratios[name]}
    end_load = os.getloadavg()
    print(f"load average at the end {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    meta = {"driftloop": __version__, "python": platform.python_version(), "cores": os.cpu_count()}
    payload = {
        **meta,
        "reps": reps,
        "commits": commits,
        "entities": args.entities,
        "load_average": [load, end_load],
        **results,
    }
    (out / "audit_write.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
