"""The audit log's protocol: what the server writes and monitoring reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from driftloop.audit._record import AuditRecord, FeatureValue, Label

__all__ = ["AuditLog"]


@runtime_checkable
class AuditLog(Protocol):
    """A durable log of predictions and their later labels.

    ``write`` is a group commit: every record of the call is durable when it returns,
    or none is. It blocks, so the server calls it off the event loop (see
    :class:`~driftloop.audit.GroupCommitWriter`).
    """

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` in one transaction; durable on return."""
        ...

    def add_labels(self, labels: Iterable[Label]) -> list[str]:
        """Attach labels by prediction id; return the ids that are not in the log."""
        ...

    def get(self, prediction_id: str) -> AuditRecord:
        """One prediction with its label if known; ``NotFoundError`` if absent."""
        ...

    def window(
        self,
        start: datetime,
        end: datetime,
        *,
        model: str | None = None,
        version: str | None = None,
    ) -> pd.DataFrame:
        """Predictions with ``start <= ts < end`` (UTC), oldest first, as a frame."""
        ...

    def by_entity(
        self,
        name: str,
        value: FeatureValue,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Predictions made for one entity (``name == value``), oldest first."""
        ...

    def compact(self, before: datetime) -> list[Path]:
        """Move records older than ``before`` to Parquet files, one per UTC day."""
        ...

    def close(self) -> None:
        """Release connections; the log is unusable afterwards."""
        ...
