"""Bounded storage: the audit database keeps recent predictions, Parquet keeps the rest.

At full rate the log grows about 1.65 KB per prediction (gigabytes an hour). A retention
pass compacts the oldest rows to Parquet day partitions (which ``window`` and ``get``
still read), in steps of :data:`STEP_ROWS` so memory stays bounded, until the database
holds no row older than ``hot_days`` and at most ``hot_max_rows``; then it deletes the
archived days older than ``archive_days``. A pass interrupted anywhere loses nothing:
each step writes its Parquet files before deleting their rows, and a row written twice
(a crash between the two) is read once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from driftloop.audit._open import open_audit_log
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.config import RetentionConfig
from driftloop.core.errors import ConfigError

__all__ = [
    "STEP_ROWS",
    "RetentionReport",
    "enforce_retention",
    "open_retained",
    "retain_forever",
]

log = logging.getLogger(__name__)

STEP_ROWS = 50_000  # rows compacted per step: bounds the memory of one pass


@dataclass(frozen=True)
class RetentionReport:
    """What one pass did: rows moved to Parquet, files written, archived days deleted,
    and the rows the database holds now."""

    compacted: int = 0
    files: int = 0
    pruned: list[date] = field(default_factory=list)
    hot_rows: int = 0


def enforce_retention(
    audit: SqlAuditLog, policy: RetentionConfig, *, now: datetime | None = None
) -> RetentionReport:
    """Apply ``policy`` to ``audit`` once (see the module docstring)."""
    archive = audit.archive
    if archive is None:
        raise ConfigError(
            "audit.retention: this audit log has no archive folder to compact into; add "
            "?archive=FOLDER to audit.url (a PostgreSQL log has none by default)."
        )
    now = now or datetime.now(UTC)
    hot = before = audit.hot_rows()
    cutoff = now - timedelta(days=policy.hot_days) if policy.hot_days is not None else None
    if policy.hot_max_rows is not None and hot > policy.hot_max_rows:
        keep_from = audit.nth_oldest(hot - policy.hot_max_rows)
        if keep_from is not None:
            cutoff = keep_from if cutoff is None else max(cutoff, keep_from)
    files = 0
    while cutoff is not None:
        oldest = audit.nth_oldest(0)
        if oldest is None or oldest >= cutoff:
            break
        step = audit.nth_oldest(STEP_ROWS)
        end = cutoff if step is None or step > cutoff else step
        if end <= oldest:  # more than a step's rows share the oldest time: take them all
            end = oldest + timedelta(microseconds=1)
        files += len(audit.compact(end))
    if cutoff is not None:
        hot = audit.hot_rows()
    pruned = []
    if policy.archive_days is not None:
        pruned = archive.prune((now - timedelta(days=policy.archive_days)).date())
    return RetentionReport(before - hot, files, pruned, hot)


def open_retained(url: str, root: Path) -> SqlAuditLog:
    """The audit log at ``url`` as retention works on it (either built-in backend)."""
    audit = open_audit_log(url, root=root)
    if not isinstance(audit, SqlAuditLog):  # pragma: no cover - both backends are
        raise ConfigError(f"audit.retention: {type(audit).__name__} cannot be compacted.")
    return audit


def retain_forever(
    open_log: Callable[[], SqlAuditLog], policy: RetentionConfig, stop: threading.Event
) -> None:
    """Apply ``policy`` every ``policy.every_s`` until ``stop`` is set (a server's
    background thread); a failed pass is logged and tried again next time."""
    while not stop.wait(policy.every_s):
        try:
            audit = open_log()
            try:
                report = enforce_retention(audit, policy)
            finally:
                audit.close()
        except Exception as exc:
            log.warning("Audit retention pass failed: %s", exc)
            continue
        if report.compacted or report.pruned:
            log.info(
                "Audit retention: %d row(s) compacted to Parquet, %d archived day(s) deleted, "
                "%d row(s) in the database.",
                report.compacted,
                len(report.pruned),
                report.hot_rows,
            )
