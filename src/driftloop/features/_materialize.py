"""Materialization: copy the latest feature rows (and recent events) to the online store.

Idempotent (the online store keeps a row only if it is at least as new as the stored
one; events are keyed by content) and resumable: the batches written so far for a
``(start, end)`` run are recorded, and a rerun of the same run skips them.
``materialize_incremental`` continues from each view's watermark (the ``end`` of its
last completed run). Times given with a time zone are converted to naive UTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftloop.core.errors import BackendUnavailableError, InvalidParameterError
from driftloop.features._definitions import FeatureView
from driftloop.features._offline import events_sql, latest_rows_sql
from driftloop.features._online import OnlineRow
from driftloop.features._stats import view_stats
from driftloop.features._store import WRITTEN_KEY, FeatureStore, _events, _plain, entity_key
from driftloop.features._time import from_us, now_utc, to_us
from driftloop.features._windows import StreamFeatureView

__all__ = ["MaterializationResult", "materialize", "materialize_incremental"]

BATCH_ROWS = 10_000
Progress = Callable[[str, int, int], None]
"""Called as ``progress(view_name, batches_done, batches_total)``."""


@dataclass(frozen=True)
class MaterializationResult:
    view: str
    start: datetime
    end: datetime
    rows: int
    batches_skipped: int


def _watermark_key(view: str) -> str:
    return f"materialized:{view}"


def online_problem(store: FeatureStore) -> str | None:
    """Why ``store``'s online store cannot serve its features now, or None.

    An online store that holds no rows (new, or a Redis restarted without persistence)
    answers every read with nulls, which look like ordinary missing values: here it is
    told apart by the marker every materialization and push writes (or, in a store
    written before the marker, any view's watermark).
    """
    if not store.catalog.views:
        return None
    online = store.online
    try:
        if online.get_meta(WRITTEN_KEY) is not None:
            return None
        if any(online.get_meta(_watermark_key(name)) for name in store.catalog.views):
            return None
    except BackendUnavailableError:
        return "unreachable"
    return (
        "holds no feature rows (new, or restarted without its data): run "
        "`driftloop features materialize`"
    )


def _run_key(view: str) -> str:
    return f"materializing:{view}"


def materialize(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    views: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> list[MaterializationResult]:
    """Write each view's latest row per entity in ``[start, end)`` to the online store."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise InvalidParameterError(f"materialize: end ({end}) must be after start ({start}).")
    names = list(views) if views is not None else list(store.catalog.views)
    return [_one(store, store.view(n), start, end, progress) for n in names]


def materialize_incremental(
    store: FeatureStore,
    end: datetime | None = None,
    views: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> list[MaterializationResult]:
    """Materialize each view from its watermark (or from the beginning) up to ``end``."""
    end = _utc(end) if end is not None else now_utc()
    names = list(views) if views is not None else list(store.catalog.views)
    results = []
    for name in names:
        view = store.view(name)
        mark = store.online.get_meta(_watermark_key(name))
        start = datetime.fromisoformat(mark) if mark else datetime(1970, 1, 1)
        if start >= end:
            results.append(MaterializationResult(name, start, end, 0, 0))
            continue
        results.append(_one(store, view, start, end, progress))
    return results


def _one(
    store: FeatureStore,
    view: FeatureView | StreamFeatureView,
    start: datetime,
    end: datetime,
    progress: Progress | None,
) -> MaterializationResult:
    online = store.online
    if isinstance(view, StreamFeatureView):
        # the events known in [start, end) still inside the longest window at `end`
        sql = events_sql(store.offline, view, start, end)
    else:
        sql = latest_rows_sql(store.offline, view, start, end)
    run_id = json.dumps([start.isoformat(), end.isoformat(), view.version])
    state = online.get_meta(_run_key(view.name))
    done = 0
    if state:
        saved = json.loads(state)
        if saved["run"] == run_id:
            done = int(saved["batches_done"])
    estimate = _count(store, sql)
    reader = store.offline.connection.sql(sql).to_arrow_reader(BATCH_ROWS)
    total_rows = 0
    batches = 0
    skipped = 0
    total_batches = max(1, -(-estimate // BATCH_ROWS))
    for batch in reader:
        batches += 1
        if batches <= done:
            skipped += 1
            continue
        records = batch.to_pylist()
        total_rows += len(records)
        if isinstance(view, StreamFeatureView):
            for r in records:
                r[view.timestamp_field] = r.pop("__ts")
                if view.created_timestamp_field:
                    r[view.created_timestamp_field] = r.pop("__cr")
            online.append_events(_events(view, records), view.retention_us)
        else:
            online.write_rows(_rows(view, records))
        online.set_meta(_run_key(view.name), json.dumps({"run": run_id, "batches_done": batches}))
        if progress is not None:
            progress(view.name, batches, total_batches)
    if store.registry is not None:
        store.registry.record_stats(view_stats(store.offline, view, until=end))
    online.set_meta(_watermark_key(view.name), end.isoformat())
    online.set_meta(WRITTEN_KEY, now_utc().isoformat())
    online.set_meta(_run_key(view.name), json.dumps({"run": run_id, "batches_done": batches}))
    return MaterializationResult(view.name, start, end, total_rows, skipped)


@contextmanager
def progress_bar(show: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr (one task per view), or nothing."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("materializing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def report(view: str, done: int, total: int) -> None:
        if view not in tasks:
            tasks[view] = bar.add_task(view, total=total)
        bar.update(tasks[view], completed=done, total=max(total, done))

    with bar:
        yield report


def _utc(moment: datetime) -> datetime:
    """A datetime as naive UTC (naive ones are taken as UTC already)."""
    return from_us(to_us(moment))


def _count(store: FeatureStore, sql: str) -> int:
    rows = store.offline.connection.execute(f"SELECT count(*) FROM ({sql})").fetchall()
    return int(rows[0][0])


def _rows(view: FeatureView, records: list[dict[str, Any]]) -> list[OnlineRow]:
    return [
        OnlineRow(
            entity_key(view.name, [r[k] for k in view.join_keys]),
            to_us(r["__ts"]),
            {f: _plain(r[f]) for f in view.feature_names},
            # the created time, when the offline query selects it, orders equal event times
            None if r.get("__cr") is None else to_us(r["__cr"]),
        )
        for r in records
    ]
