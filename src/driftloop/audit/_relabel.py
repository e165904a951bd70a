"""Labels set with care: a label that would replace a different one is refused unless the
caller asks to relabel, and every relabel is kept (old label, new label, who, when).

The check and the write are one transaction (SQLite: the write lock; PostgreSQL: an
advisory lock that serialises label writers), so two callers labelling the same
prediction at once cannot both believe they set the first label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import Label
from driftloop.audit._sql import SqlAuditLog, from_us, to_us
from driftloop.core.errors import InvalidParameterError, NotFoundError

__all__ = [
    "LabelOutcome",
    "LabelStore",
    "PlainLabelStore",
    "Relabel",
    "SqlLabelStore",
    "label_store",
]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Relabel:
    """One change of a prediction's label, as the audit store keeps it."""

    prediction_id: str
    old_label: float
    new_label: float
    actor: str
    ts: datetime


@dataclass(frozen=True)
class LabelOutcome:
    """What :meth:`LabelStore.set_labels` did: how many labels it holds now (``accepted``,
    a label equal to the stored one included), the ids the log does not know, the ids
    whose different label was kept (``conflicts``: then nothing at all was written) and
    the relabels made."""

    accepted: int
    unknown: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    relabelled: list[Relabel] = field(default_factory=list)


@runtime_checkable
class LabelStore(Protocol):
    """Labels with relabels refused unless asked for, and audited."""

    def set_labels(
        self, labels: Sequence[Label], *, relabel: bool, actor: str, now: datetime
    ) -> LabelOutcome:
        """Attach ``labels``; a label differing from a stored one is a conflict: with
        ``relabel`` it replaces it and is recorded with ``actor`` and ``now``, without
        it nothing of the call is written."""
        ...

    def relabels(self, prediction_id: str | None = None) -> list[Relabel]:
        """The relabels recorded (of one prediction), oldest first."""
        ...


class SqlLabelStore:
    """Labels and relabels in the tables of a SQL audit log."""

    def __init__(self, log: SqlAuditLog) -> None:
        self.log = log

    def set_labels(
        self, labels: Sequence[Label], *, relabel: bool, actor: str, now: datetime
    ) -> LabelOutcome:
        by_id = {lab.prediction_id: lab for lab in labels}
        return self.log._retrying(lambda: self._set(by_id, relabel, actor, now))

    def _set(
        self, by_id: dict[str, Label], relabel: bool, actor: str, now: datetime
    ) -> LabelOutcome:
        log = self.log
        ids = list(by_id)
        labels_table = log._t("labels")
        with log._transaction() as cur:
            log._lock_labels(cur)
            known = log._known(cur, ids)
            stored: dict[str, float] = {}
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                cur.execute(
                    log._sql(
                        f"SELECT prediction_id, label FROM {labels_table} "
                        f"WHERE prediction_id IN ({', '.join('?' * len(chunk))})"
                    ),
                    chunk,
                )
                stored.update((pid, float(label)) for pid, label in cur.fetchall())
            unknown = [pid for pid in ids if pid not in known]
            fresh = [pid for pid in ids if pid in known and pid not in stored]
            changed = [
                pid for pid in ids if pid in stored and stored[pid] != float(by_id[pid].label)
            ]
            if changed and not relabel:
                return LabelOutcome(0, unknown, changed)
            now_us = to_us(now)
            rows = [
                (pid, float(by_id[pid].label), to_us(by_id[pid].ts or now))
                for pid in fresh + changed
            ]
            if rows:
                cur.executemany(
                    log._sql(
                        f"INSERT INTO {labels_table} (prediction_id, label, label_ts_us) "
                        "VALUES (?, ?, ?) ON CONFLICT (prediction_id) DO UPDATE SET "
                        "label = excluded.label, label_ts_us = excluded.label_ts_us"
                    ),
                    rows,
                )
            made = [
                Relabel(pid, stored[pid], float(by_id[pid].label), actor, from_us(now_us))
                for pid in changed
            ]
            if made:
                cur.executemany(
                    log._sql(
                        f"INSERT INTO {log._t('relabels')} "
                        "(prediction_id, old_label, new_label, actor, ts_us) VALUES (?, ?, ?, ?, ?)"
                    ),
                    [(r.prediction_id, r.old_label, r.new_label, r.actor, now_us) for r in made],
                )
        return LabelOutcome(len(ids) - len(unknown), unknown, [], made)

    def relabels(self, prediction_id: str | None = None) -> list[Relabel]:
        log = self.log
        where, params = ("WHERE prediction_id = ? ", [prediction_id]) if prediction_id else ("", [])
        query = log._sql(
            "SELECT prediction_id, old_label, new_label, actor, ts_us FROM "
            f"{log._t('relabels')} {where}ORDER BY ts_us, prediction_id"
        )

        def read() -> list[Any]:
            with log._transaction(write=False) as cur:
                cur.execute(query, params)
                return list(cur.fetchall())

        return [
            Relabel(pid, float(old), float(new), actor, from_us(int(ts_us)))
            for pid, old, new, actor, ts_us in log._retrying(read)
        ]


class PlainLabelStore:
    """Labels through the :class:`AuditLog` protocol alone, for a log with no relabel
    history (another backend): a conflict is found by reading each prediction (not in one
    transaction with the write), and a relabel is refused, as it could not be recorded."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def set_labels(
        self, labels: Sequence[Label], *, relabel: bool, actor: str, now: datetime
    ) -> LabelOutcome:
        by_id = {lab.prediction_id: lab for lab in labels}
        unknown: list[str] = []
        stored: dict[str, float] = {}
        for pid in by_id:
            try:
                label = self.log.get(pid).label
            except NotFoundError:
                unknown.append(pid)
                continue
            if label is not None:
                stored[pid] = float(label)
        changed = [pid for pid, lab in by_id.items() if stored.get(pid, lab.label) != lab.label]
        if changed and relabel:
            raise InvalidParameterError(
                f"This audit log ({type(self.log).__name__}) keeps no relabel history, so "
                f"prediction '{changed[0]}' cannot be relabelled."
            )
        if changed:
            return LabelOutcome(0, unknown, changed)
        fresh = [lab for pid, lab in by_id.items() if pid not in unknown and pid not in stored]
        late = self.log.add_labels(fresh) if fresh else []
        return LabelOutcome(len(by_id) - len(unknown) - len(late), unknown + late)

    def relabels(self, prediction_id: str | None = None) -> list[Relabel]:
        return []


def label_store(log: AuditLog | None) -> LabelStore | None:
    """Where ``log`` sets labels: its own tables (relabels audited) for the SQLite and
    PostgreSQL logs, the protocol alone (relabels refused) for another log; None without
    a log."""
    if log is None:
        return None
    return SqlLabelStore(log) if isinstance(log, SqlAuditLog) else PlainLabelStore(log)
