"""The prediction log: every prediction with its features, version, route, explanation
and later label; a durable group-commit writer; readers by window, id and entity;
compaction to Parquet.

>>> import tempfile
>>> from pathlib import Path
>>> from datetime import UTC, datetime, timedelta
>>> log = open_audit_log("sqlite:///audit.db", root=Path(tempfile.mkdtemp()))
>>> now = datetime.now(UTC)
>>> log.write([AuditRecord("p1", now, "fraud", "3", "champion", 0.91, "decline", 1.2,
...                        features={"amount": 950.0}, entity_keys={"card_id": "c7"})])
>>> log.add_labels([Label("p1", 1.0)])
[]
>>> frame = log.window(now - timedelta(minutes=1), now + timedelta(minutes=1))
>>> frame[["prediction_id", "decision", "label", "amount"]].to_dict("records")
[{'prediction_id': 'p1', 'decision': 'decline', 'label': 1.0, 'amount': 950.0}]
>>> log.close()
"""

from __future__ import annotations

from driftloop.audit._batch import AuditBatch
from driftloop.audit._keys import Claim, IdempotencyStore, idempotency_store
from driftloop.audit._open import open_audit_log
from driftloop.audit._postgres import PostgresAuditLog
from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import FRAME_COLUMNS, AuditRecord, Label
from driftloop.audit._relabel import LabelOutcome, LabelStore, Relabel, label_store
from driftloop.audit._retention import (
    RetentionReport,
    enforce_retention,
    open_retained,
    retain_forever,
)
from driftloop.audit._sqlite import SqliteAuditLog
from driftloop.audit._summary import (
    LATENCY_EDGES_MS,
    SCORE_EDGES,
    RouteSummary,
    entity_predictions,
    newest_predictions,
    route_summary,
)
from driftloop.audit._writer import GroupCommitWriter

__all__ = [
    "FRAME_COLUMNS",
    "LATENCY_EDGES_MS",
    "SCORE_EDGES",
    "AuditBatch",
    "AuditLog",
    "AuditRecord",
    "Claim",
    "GroupCommitWriter",
    "IdempotencyStore",
    "Label",
    "LabelOutcome",
    "LabelStore",
    "PostgresAuditLog",
    "Relabel",
    "RetentionReport",
    "RouteSummary",
    "SqliteAuditLog",
    "enforce_retention",
    "entity_predictions",
    "idempotency_store",
    "label_store",
    "newest_predictions",
    "open_audit_log",
    "open_retained",
    "retain_forever",
    "route_summary",
]
