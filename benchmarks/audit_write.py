"""What does the SQLite audit log's schema cost per audited prediction?

Issue 18's (b) arm went from 78 to 119 us of CPU per request between 2026-12-02 and
2026-12-03. In a profile of the server under wrk the audit writer's inserts were the
largest part that grew; since then the schema gained the hourly route rollups (a0004: a
trigger that upserts ``audit_route_hours`` for every inserted row) and the tenant index
(a0005: ``(tenant, ts_us)``). This benchmark writes the same 64-row batches (4 per
commit, as the group-commit writer does under load, inline features, no entity keys, or
one entity key per row with ``--entities``, over ``--values`` card ids) through
``SqlAuditLog.write_batches`` into fresh logs, with the schema as it is and with the
tenant index dropped, and reports the writer thread's CPU time per row and each variant
over "as is" from the same repetition (arms interleaved; the machine is shared: read the
minimum and median, and the load average printed beside them). Since ``a0006`` the
writer, not a trigger, keeps the rollups: there is no trigger left to drop.

Ids come from ``driftloop.core.ids.new_ids`` (UUIDv7, as the server makes them). Entity rows
are staged in 16 unindexed tables and merged into the indexed ``audit_entities`` one table
per ``--merge-rows`` / 16 rows staged (a0007); the arm "entities unstaged" writes them
straight into the index, the layout before a0007. ``--grown N`` measures on a log already
holding N rows (made once per layout, copied for every arm, its entity rows merged), where
random inserts into the entity index cost most. Beside the CPU per row, each arm reports
the CPU of its longest commit and of its longest merge (part of the commit that started
it): every request waiting on the writer waits that long.

    python benchmarks/audit_write.py [--quick] [--reps N] [--commits N] [--entities]
        [--values N] [--grown N] [--merge-rows N] [--variants NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop import __version__
from driftloop.audit import AuditBatch, open_audit_log
from driftloop.audit._sql import ENTITY_MERGE_ROWS, SqlAuditLog
from driftloop.core.ids import new_ids

FEATURES = [f"f{i:02d}" for i in range(20)]
ROWS, BATCHES_PER_COMMIT, WARM_COMMITS = 64, 4, 20
STAGED, UNSTAGED = True, False
VARIANTS: dict[str, tuple[list[str], bool]] = {  # schema statements, entity rows staged
    "as is": ([], STAGED),
    "entities unstaged": ([], UNSTAGED),
    "no tenant index": (["DROP INDEX audit_predictions_tenant"], STAGED),
}


def _scatter(k: int) -> int:
    """Row ``k``'s card number before the modulo: consecutive rows get unrelated cards (not
    neighbours in the index, which would flatter a layout that inserts at random)."""
    return (k * 2_654_435_761) % 4_294_967_296


def commit_of(values: int, seq: int) -> list[AuditBatch]:
    """One commit's batches: ``ROWS`` predictions each, fresh ids, 20 features."""
    out = []
    for b in range(BATCHES_PER_COMMIT):
        keys = [
            {"card_id": f"c{_scatter(seq * BATCHES_PER_COMMIT * ROWS + b * ROWS + i) % values}"}
            if values
            else {}
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
                new_ids(ROWS),
                [0.3] * ROWS,
                ["-"] * ROWS,
                keys,
                [{}] * ROWS,
            )
        )
    return out


def grown_log(rows: int, values: int, staged: bool, merge: int) -> Path:
    """A folder whose audit.db holds ``rows`` rows, written as the arm writes them (its
    entity rows merged at the end)."""
    folder = Path(tempfile.mkdtemp(prefix="driftloop-audit-grown-"))
    log = open_audit_log("sqlite:///audit.db", root=folder)
    assert isinstance(log, SqlAuditLog)
    log.entity_merge_rows = merge if staged else None
    for k in range(rows // (BATCHES_PER_COMMIT * ROWS)):
        log.write_batches(commit_of(values, k))
    log.close()  # merges what is staged
    return folder


def cpu_per_row(
    drops: list[str],
    staged: bool,
    commits: int,
    values: int,
    grown: dict[bool, Path],
    merge: int,
) -> tuple[float, float, float]:
    """Writer-thread CPU us per row over ``commits`` commits into a fresh log (a copy of
    ``grown[staged]`` when given), the CPU ms of the longest of those commits and of the
    longest merge (part of the commit that started it)."""
    folder = Path(tempfile.mkdtemp(prefix="driftloop-audit-write-"))
    if staged in grown:
        shutil.copy(grown[staged] / "audit.db", folder / "audit.db")
    log = open_audit_log("sqlite:///audit.db", root=folder)
    assert isinstance(log, SqlAuditLog)
    log.entity_merge_rows = merge if staged else None
    merges: list[float] = []
    merge_entities = log.merge_entities

    def timed_merge(part: int | None = None) -> int:
        before = time.thread_time()
        moved = merge_entities(part)
        merges.append(time.thread_time() - before)
        return moved

    log.merge_entities = timed_merge  # type: ignore[method-assign]
    con = sqlite3.connect(folder / "audit.db")
    for statement in drops:
        con.execute(statement)
    con.commit()
    con.close()
    work = [commit_of(values, k + 1_000_000) for k in range(WARM_COMMITS + commits)]
    for batches in work[:WARM_COMMITS]:
        log.write_batches(batches)
    merges.clear()
    longest = 0.0
    started = time.thread_time()
    for batches in work[WARM_COMMITS:]:
        before = time.thread_time()
        log.write_batches(batches)
        longest = max(longest, time.thread_time() - before)
    spent = time.thread_time() - started
    longest_merge = max(merges, default=0.0)  # not close's merge of every table
    log.close()
    shutil.rmtree(folder, ignore_errors=True)
    per_row = 1e6 * spent / (commits * BATCHES_PER_COMMIT * ROWS)
    return per_row, 1e3 * longest, 1e3 * longest_merge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1 repetition of 50 commits")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5)")
    parser.add_argument("--commits", type=int, default=None, help="commits per arm (200)")
    parser.add_argument("--entities", action="store_true", help="one entity key per row")
    parser.add_argument("--values", type=int, default=500, help="distinct entity values")
    parser.add_argument("--grown", type=int, default=0, help="rows in the log beforehand")
    parser.add_argument(
        "--merge-rows", type=int, default=ENTITY_MERGE_ROWS, help="staged rows per merge"
    )
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 5)
    commits = args.commits or (50 if args.quick else 200)
    variants = ["as is"] + [v for v in args.variants if v != "as is"]
    values = args.values if args.entities else 0
    load = os.getloadavg()
    print(
        f"audit write: {reps} x {commits} commits of {BATCHES_PER_COMMIT} x {ROWS} rows, "
        f"entities {f'on ({values:,} values)' if values else 'off'}, "
        f"grown {args.grown:,} rows, a merge per {args.merge_rows:,} staged rows; "
        f"load average {load[0]:.2f}",
        flush=True,
    )
    grown = {
        staged: grown_log(args.grown, values, staged, args.merge_rows)
        for staged in {VARIANTS[name][1] for name in variants}
        if args.grown
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    longest: dict[str, list[float]] = {name: [] for name in variants}
    merges: dict[str, list[float]] = {name: [] for name in variants}
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps):
        order = variants if rep % 2 == 0 else variants[::-1]
        got = {
            name: cpu_per_row(*VARIANTS[name], commits, values, grown, args.merge_rows)
            for name in order
        }
        for name in variants:
            runs[name].append(got[name][0])
            longest[name].append(got[name][1])
            merges[name].append(got[name][2])
            ratios[name].append(got[name][0] / got["as is"][0])
    for folder in grown.values():
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{'schema':20} {'CPU us/row: median':>19} {'min':>7}  {'/ as is (median)':>17}  "
        f"{'longest commit, merge: CPU ms (max)':>36}"
    )
    results: dict[str, Any] = {}
    for name in variants:
        median, low = statistics.median(runs[name]), min(runs[name])
        ratio = statistics.median(ratios[name])
        print(
            f"{name:20} {median:19.1f} {low:7.1f}  {100 * ratio:16.0f}%  "
            f"{max(longest[name]):29.1f} {max(merges[name]):6.1f}"
        )
        results[name] = {
            "cpu_us_per_row": runs[name],
            "ratio_to_as_is": ratios[name],
            "longest_commit_cpu_ms": longest[name],
            "longest_merge_cpu_ms": merges[name],
        }
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
        "values": values,
        "grown": args.grown,
        "merge_rows": args.merge_rows,
        "load_average": [load, end_load],
        **results,
    }
    (out / "audit_write.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
