"""The SQL shared by the SQLite and PostgreSQL audit logs.

Times are stored as integer microseconds since the epoch (UTC) so that both databases
compare and index them the same way; features, explanations, missing features and outputs
as JSON text. ``ts_us`` is the event time of a prediction (what windows select),
``served_us`` when the server answered (NULL in rows written before it was kept).

A backend whose connection can break (PostgreSQL) names how to open a new one
(``_connect``) and which driver errors mean the store did not answer (``_unavailable``):
those become :class:`~driftloop.core.errors.BackendUnavailableError`, the broken
connection is dropped and the next operation opens another. Reads, label upserts and
inserts are retried once after such an error (a short pause with jitter); the retried
insert skips prediction ids already in the log, so a commit whose acknowledgement was lost
is never stored twice.

Entity rows (one per entity key of a prediction) are appended, in the transaction of their
predictions, to one of :data:`ENTITY_PARTS` unindexed staging tables
``audit_entities_recent_<part>`` (:func:`entity_part`: by name and value), and moved into
the indexed ``audit_entities`` in bulk, sorted by its key (revision
``a0007_entities_recent``): one random index insert per row made every commit write about a
page per audited row on a grown log. Each ``entity_merge_rows / ENTITY_PARTS`` rows a log
stages, it merges the next staging table in turn (a sixteenth of the keys: a short stall
for the commits waiting behind it), and all of them when it closes. Readers of an entity
read ``audit_entities`` and the staging table of its part.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pandas as pd

from driftloop.audit._archive import ParquetArchive
from driftloop.audit._backoff import Backoff
from driftloop.audit._batch import AuditBatch
from driftloop.audit._record import AuditRecord, FeatureValue, Label, records_frame, utc
from driftloop.audit._rows import audit_rows, from_us, to_us
from driftloop.core.errors import BackendUnavailableError, InvalidParameterError, NotFoundError

__all__ = [
    "COLUMNS",
    "ENTITY_MERGE_ROWS",
    "ENTITY_PARTS",
    "SqlAuditLog",
    "entity_part",
    "from_us",
    "to_us",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_COLUMNS = (
    "prediction_id, ts_us, model, version, route, score, decision, latency_ms, "
    "entity_keys, features, feature_ts, explanation, served_us, missing, outputs, tenant"
)
COLUMNS = tuple(c.strip() for c in _COLUMNS.split(","))  # a raw prediction row's columns
_CHUNK = 500
ENTITY_PARTS = 16  # staging tables of a0007
ENTITY_MERGE_ROWS = 65_536  # rows staged, at most about (benchmarks/audit_write.py --grown)
_ENTITY_COLUMNS = "name, value, ts_us, prediction_id"
_RETRY_PAUSE_S = (0.05, 0.5)  # the one retry after a broken connection: first, most
_ROWS_PER_INSERT = 62  # x 16 parameters: under every backend's limit (SQLite's oldest: 999)
_INSERTS = {  # statement: its table, its columns, what a duplicate does
    "predictions": ("predictions", _COLUMNS, " ON CONFLICT (prediction_id) DO NOTHING"),
    "predictions_short": (
        "predictions",
        _COLUMNS.replace(", missing, outputs", ""),
        " ON CONFLICT (prediction_id) DO NOTHING",
    ),
    "entities": ("entities", _ENTITY_COLUMNS, ""),
    **{
        f"entities_recent_{part}": (f"entities_recent_{part}", _ENTITY_COLUMNS, "")
        for part in range(ENTITY_PARTS)
    },
}


def entity_part(name: str, value: str) -> int:
    """The staging table (``audit_entities_recent_<part>``) of the entity ``name`` =
    ``value``: the same in every process and release.

    >>> entity_part("card_id", "c1")
    13
    """
    return zlib.crc32(f"{name}\x00{value}".encode()) % ENTITY_PARTS


class SqlAuditLog:
    """Shared implementation; subclasses open the connection, bring the tables to the
    newest revision (:mod:`driftloop.audit._schema`) and name them."""

    _param = "?"
    _prefix = ""  # schema qualifier of table names, with its dot

    def __init__(self, connection: Any, archive: str | Path | None) -> None:
        self._conn: Any = connection  # None while broken: the next operation reconnects
        self._closed = False
        self._lock = threading.Lock()
        self._archive = ParquetArchive(Path(archive)) if archive is not None else None
        self._inserts: dict[tuple[str, int], str] = {}  # INSERT of n rows, by statement, n
        # about the most entity rows staged; None: straight into audit_entities (the
        # layout before a0007, kept for the spool and for benchmarks to compare)
        self.entity_merge_rows: int | None = ENTITY_MERGE_ROWS
        self._staged = 0  # rows this log staged since it last merged (counted, not COUNTed)
        self._unmerged = 0  # ... since it last merged every part (what close merges)
        self._next_part = 0

    # -- connection -----------------------------------------------------------------
    def _connect(self) -> Any:
        """A new connection, or ``BackendUnavailableError``; backends that reconnect
        override it (an embedded file never loses its connection)."""
        raise BackendUnavailableError(f"{type(self).__name__} cannot reconnect.")

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError | None:
        """``exc`` as the error a caller sees when it means the store did not answer."""
        return None

    def _broken(self, conn: Any) -> bool:
        """Whether ``conn`` can no longer be used (then it is dropped)."""
        return False

    def _retrying(self, work: Callable[[], _T], again: Callable[[], _T] | None = None) -> _T:
        """Run ``work`` (idempotent); if the store did not answer and the connection was
        dropped (broken since its last use, or not reopened yet), run ``again`` (default:
        ``work``) once more after a short pause, on a new connection. A statement that
        timed out on a sound connection is not retried: its caller has waited enough."""
        try:
            return work()
        except BackendUnavailableError:
            if self._closed or self._conn is not None:
                raise
            time.sleep(Backoff(*_RETRY_PAUSE_S).next())
            return (again or work)()

    # -- schema ---------------------------------------------------------------------
    def _t(self, name: str) -> str:
        return f"{self._prefix}audit_{name}"

    def _sql(self, text: str) -> str:
        return text.replace("?", self._param)

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Any]:
        with self._lock:
            conn = self._conn
            if conn is None or self._broken(conn):
                if self._closed:
                    raise BackendUnavailableError(f"This {type(self).__name__} is closed.")
                self._conn = None
                conn = self._conn = self._connect()
            cur = conn.cursor()
            try:
                if write:
                    self._begin_write(cur)
                yield cur
                conn.commit()
            except BaseException as exc:
                unavailable = self._unavailable(exc)
                if unavailable is None:
                    conn.rollback()
                    raise
                with suppress(Exception):
                    conn.rollback()
                if self._broken(conn) and not self._closed:
                    with suppress(Exception):
                        conn.close()
                    self._conn = None
                raise unavailable from exc
            finally:
                with suppress(Exception):
                    cur.close()

    def _begin_write(self, cur: Any) -> None:
        """Start a write transaction (the driver's implicit one, unless a backend says)."""

    def _lock_labels(self, cur: Any) -> None:
        """Serialise label writers for the rest of the transaction (SQLite's write lock,
        taken by ``_begin_write``, does already)."""

    # -- writing --------------------------------------------------------------------
    def write(self, records: Sequence[AuditRecord]) -> None:
        self.write_batches((), records)

    def write_batches(
        self, batches: Sequence[AuditBatch], records: Sequence[AuditRecord] = ()
    ) -> None:
        """Write ``batches`` and ``records`` in one transaction (the server's group commit).

        Rows with neither missing features nor outputs (every row of a batch that has
        neither column) go in by a statement without those columns: binding two NULLs
        per row measurably slowed the hot path's inserts.
        """
        full, short, entities = audit_rows(batches, records)
        if full or short:
            self._insert(full, short, entities)

    def _insert(
        self,
        full: list[tuple[Any, ...]],
        short: list[tuple[Any, ...]],
        entities: list[tuple[str, str, int, str]],
    ) -> None:

        def insert() -> int:
            with self._transaction() as cur:
                took = self._insert_rows(cur, "predictions", full)
                took += self._insert_rows(cur, "predictions_short", short)
                self._inserted(cur, full + short, took)
                self._insert_entities(cur, entities)
            return len(full) + len(short)

        # the retry skips stored ids: the first try may have committed, unacknowledged
        self._retrying(insert, lambda: self._insert_new(full, short, entities))
        self._merge_if_due()

    def insert_rows(
        self, rows: Sequence[tuple[Any, ...]], entities: Sequence[tuple[Any, ...]]
    ) -> int:
        """Insert raw rows (one value per name of :data:`COLUMNS`) and their entity rows
        (name, value, ts_us, prediction_id) in one transaction, skipping every prediction
        id the log already has, with its entity rows: inserting the same rows twice keeps
        one copy. Return how many predictions were new. (Replaying a spool uses it.)"""
        new = self._retrying(lambda: self._insert_new(list(rows), [], list(entities)))
        self._merge_if_due()
        return new

    def _insert_new(
        self,
        full: list[tuple[Any, ...]],
        short: list[tuple[Any, ...]],
        entities: Sequence[tuple[Any, ...]],
    ) -> int:
        with self._transaction() as cur:
            known = self._known(cur, [r[0] for r in full] + [r[0] for r in short])
            full = [r for r in full if r[0] not in known]
            short = [r for r in short if r[0] not in known]
            took = self._insert_rows(cur, "predictions", full)
            took += self._insert_rows(cur, "predictions_short", short)
            self._inserted(cur, full + short, took)
            self._insert_entities(cur, [e for e in entities if e[3] not in known])
        return len(full) + len(short)

    def _insert_entities(self, cur: Any, entities: Sequence[tuple[Any, ...]]) -> None:
        if self.entity_merge_rows is None:
            self._insert_rows(cur, "entities", entities)
            return
        parts: dict[int, list[tuple[Any, ...]]] = {}
        for e in entities:
            parts.setdefault(entity_part(e[0], e[1]), []).append(e)
        for part, rows in parts.items():
            self._insert_rows(cur, f"entities_recent_{part}", rows)
        # over-counts a rolled-back commit: merges early
        self._staged += len(entities)
        self._unmerged += len(entities)

    # -- staged entity rows ------------------------------------------------------------
    def _merge_if_due(self) -> None:
        """Merge the next staging table once enough rows were staged. The rows written
        are committed by now: a merge the store did not answer leaves its rows staged
        (still read) for the next one."""
        limit = self.entity_merge_rows
        if limit is None or self._staged < limit / ENTITY_PARTS:
            return
        try:
            self.merge_entities(self._next_part)
        except BackendUnavailableError as exc:
            log.warning("Audit entity rows stay staged until the next merge: %s", exc)

    def merge_entities(self, part: int | None = None) -> int:
        """Move the rows of staging table ``part`` (None: of every one) into
        ``audit_entities`` in one transaction, sorted by its index key; return how many
        moved. Merges of several writers at once move each row once (see
        :meth:`_move_staged`)."""
        parts = range(ENTITY_PARTS) if part is None else [part]
        with self._transaction() as cur:
            moved = sum(self._move_staged(cur, self._t(f"entities_recent_{p}")) for p in parts)
        self._staged = 0
        if part is None:
            self._unmerged = 0
        else:
            self._next_part = (part + 1) % ENTITY_PARTS
        return moved

    def _move_staged(self, cur: Any, table: str) -> int:
        """SQLite: the write lock, held since ``BEGIN IMMEDIATE``, keeps every other
        writer out until the commit, so the rows copied are exactly the rows deleted, and
        a second merge finds the table empty."""
        cur.execute(
            f"INSERT INTO {self._t('entities')} ({_ENTITY_COLUMNS}) "
            f"SELECT {_ENTITY_COLUMNS} FROM {table} ORDER BY name, value, ts_us"
        )
        moved = int(cur.rowcount)
        cur.execute(f"DELETE FROM {table}")
        return moved

    def _inserted(self, cur: Any, rows: list[tuple[Any, ...]], took: int) -> None:
        """Predictions ``rows`` were just inserted in ``cur``'s transaction, ``took`` of
        them new (a backend that keeps rollups adds them here)."""

    def _known(self, cur: Any, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the predictions table has."""
        known: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            cur.execute(
                self._sql(
                    f"SELECT prediction_id FROM {self._t('predictions')} "
                    f"WHERE prediction_id IN ({', '.join('?' * len(chunk))})"
                ),
                chunk,
            )
            known.update(row[0] for row in cur.fetchall())
        return known

    def _insert_rows(self, cur: Any, statement: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Up to 62 rows per INSERT statement: one database step for the lot, where
        executemany steps (and the sqlite3 module hands the GIL over) once per row. How
        many rows the database took (a duplicate prediction id inserts nothing)."""
        took = 0
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            key = (statement, len(chunk))
            sql = self._inserts.get(key)
            if sql is None:
                table, columns, conflict = _INSERTS[statement]
                row = f"({', '.join([self._param] * (columns.count(',') + 1))})"
                sql = self._inserts[key] = (
                    f"INSERT INTO {self._t(table)} ({columns}) VALUES "
                    f"{', '.join([row] * len(chunk))}{conflict}"
                )
            cur.execute(sql, [value for r in chunk for value in r])
            took += cur.rowcount
        return took

    def add_labels(self, labels: Iterable[Label]) -> list[str]:
        now = datetime.now(UTC)
        by_id = {lab.prediction_id: lab for lab in labels}
        return self._retrying(lambda: self._add_labels(by_id, now))  # an upsert: idempotent

    def _add_labels(self, by_id: dict[str, Label], now: datetime) -> list[str]:
        ids = list(by_id)
        with self._transaction() as cur:
            known = self._known(cur, ids)
            unknown = [pid for pid in ids if pid not in known]
            rows = [
                (pid, float(by_id[pid].label), to_us(by_id[pid].ts or now))
                for pid in ids
                if pid in known
            ]
            if rows:
                cur.executemany(
                    self._sql(
                        f"INSERT INTO {self._t('labels')} (prediction_id, label, label_ts_us) "
                        "VALUES (?, ?, ?) ON CONFLICT (prediction_id) DO UPDATE SET "
                        "label = excluded.label, label_ts_us = excluded.label_ts_us"
                    ),
                    rows,
                )
        return unknown

    # -- reading --------------------------------------------------------------------
    def _select(self, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        query = (
            f"SELECT {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))}, "
            f"l.label, l.label_ts_us FROM {self._t('predictions')} p "
            f"LEFT JOIN {self._t('labels')} l ON l.prediction_id = p.prediction_id "
            f"WHERE {where} ORDER BY p.ts_us, p.prediction_id"
        )

        def read() -> list[Any]:
            with self._transaction(write=False) as cur:
                cur.execute(self._sql(query), list(params))
                return list(cur.fetchall())

        return [_decode(row) for row in self._retrying(read)]

    def get(self, prediction_id: str) -> AuditRecord:
        rows = self._select("p.prediction_id = ?", [prediction_id])
        if not rows and self._archive is not None:
            rows = self._archive.find(prediction_id)
        if not rows:
            raise NotFoundError(f"Prediction '{prediction_id}' is not in the audit log.")
        return _record(rows[0])

    def window(
        self,
        start: datetime,
        end: datetime,
        *,
        model: str | None = None,
        version: str | None = None,
        tenant: str | None = None,
    ) -> pd.DataFrame:
        """Predictions with ``start <= ts < end`` (of ``model``, ``version`` and
        ``tenant`` when given), oldest first."""
        if utc(end) < utc(start):
            raise InvalidParameterError(f"Window end {end} is before its start {start}.")
        where = "p.ts_us >= ? AND p.ts_us < ?"
        params: list[Any] = [to_us(start), to_us(end)]
        if model is not None:
            where, params = where + " AND p.model = ?", [*params, model]
        if version is not None:
            where, params = where + " AND p.version = ?", [*params, version]
        if tenant is not None:
            where, params = where + " AND p.tenant = ?", [*params, tenant]
        rows = self._select(where, params)
        if self._archive is not None:
            archived = self._archive.rows(utc(start), utc(end), model, version)
            rows = [r for r in archived if tenant is None or r["tenant"] == tenant] + rows
        return records_frame(_dedupe(rows))

    def by_entity(
        self,
        name: str,
        value: FeatureValue,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        lo = to_us(start) if start is not None else -(2**62)
        hi = to_us(end) if end is not None else 2**62
        condition = "name = ? AND value = ? AND ts_us >= ? AND ts_us < ?"
        where = f"p.prediction_id IN ({self._entity_ids(condition, name, str(value))})"
        return records_frame(self._select(where, [name, str(value), lo, hi] * 2))

    def _entity_ids(self, condition: str, name: str, value: str) -> str:
        """A subquery of the prediction ids of the entity rows of ``name`` = ``value``,
        merged or staged, that meet ``condition``: its parameters are bound twice."""
        return " UNION ALL ".join(
            f"SELECT prediction_id FROM {self._t(table)} WHERE {condition}"
            for table in ("entities", f"entities_recent_{entity_part(name, value)}")
        )

    # -- compaction -----------------------------------------------------------------
    def hot_rows(self, tenant: str | None = None) -> int:
        """How many predictions the database holds (of ``tenant`` when given; compacted
        ones not counted)."""
        where, params = ("", []) if tenant is None else (" WHERE tenant = ?", [tenant])
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(f"SELECT COUNT(*) FROM {self._t('predictions')}{where}"), params)
            return int(cur.fetchone()[0])

    def nth_oldest(self, n: int) -> datetime | None:
        """The event time of the ``n``-th oldest prediction in the database (0: the
        oldest), None when it holds no more than ``n``: where compacting ``n`` rows ends."""
        with self._transaction(write=False) as cur:
            cur.execute(
                self._sql(
                    f"SELECT ts_us FROM {self._t('predictions')} ORDER BY ts_us LIMIT 1 OFFSET ?"
                ),
                [n],
            )
            row = cur.fetchone()
        return None if row is None else from_us(int(row[0]))

    @property
    def archive(self) -> ParquetArchive | None:
        """Where compacted rows go (None: this log cannot compact)."""
        return self._archive

    def compact(self, before: datetime) -> list[Path]:
        if self._archive is None:
            raise InvalidParameterError(
                "This audit log has no archive folder; pass archive=... to compact."
            )
        cutoff = to_us(before)
        rows = self._select("p.ts_us < ?", [cutoff])
        if not rows:
            return []
        written = self._archive.append(rows)
        ids = [row["prediction_id"] for row in rows]
        with self._transaction() as cur:
            staging = [f"entities_recent_{part}" for part in range(ENTITY_PARTS)]
            for table in ("labels", "entities", *staging, "predictions"):
                for i in range(0, len(ids), _CHUNK):
                    chunk = ids[i : i + _CHUNK]
                    cur.execute(
                        self._sql(
                            f"DELETE FROM {self._t(table)} "
                            f"WHERE prediction_id IN ({', '.join('?' * len(chunk))})"
                        ),
                        chunk,
                    )
        return written

    def close(self) -> None:
        """Merge the staged entity rows (best effort, and not through a connection that
        broke: left staged, they are still read and the next merge moves them), then close
        the connection."""
        live = self._conn is not None and not self._closed
        if self.entity_merge_rows is not None and self._unmerged and live:
            try:
                self.merge_entities()
            except BackendUnavailableError as exc:
                log.warning("Audit entity rows stay staged until the next merge: %s", exc)
        with self._lock:
            self._closed = True
            if self._conn is not None:
                with suppress(Exception):  # a broken connection is closed already
                    self._conn.close()


def _decode(row: Sequence[Any]) -> dict[str, Any]:
    (pid, ts_us, model, version, route, score, decision, latency_ms) = row[:8]
    entity_keys, features, feature_ts, explanation, served_us, missing, outputs = row[8:15]
    tenant, label, label_ts_us = row[15:]
    return {
        "prediction_id": pid,
        "ts": from_us(int(ts_us)),
        "model": model,
        "version": version,
        "route": route,
        "score": float(score),
        "decision": decision,
        "latency_ms": float(latency_ms),
        "entity_keys": orjson.loads(entity_keys),
        "features": orjson.loads(features),
        "feature_ts": orjson.loads(feature_ts),
        "explanation": None if explanation is None else orjson.loads(explanation),
        "label": None if label is None else float(label),
        "label_ts": None if label_ts_us is None else from_us(int(label_ts_us)),
        "served_at": None if served_us is None else from_us(int(served_us)),
        "missing": [] if missing is None else orjson.loads(missing),
        "outputs": None if outputs is None else orjson.loads(outputs),
        "tenant": tenant,
    }


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["prediction_id"], row)
    return sorted(seen.values(), key=lambda r: (r["ts"], r["prediction_id"]))


def _record(row: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        prediction_id=row["prediction_id"],
        ts=row["ts"],
        model=row["model"],
        version=row["version"],
        route=row["route"],
        score=row["score"],
        decision=row["decision"],
        latency_ms=row["latency_ms"],
        features=row["features"],
        entity_keys=row["entity_keys"],
        feature_ts={
            k: None if v is None else datetime.fromisoformat(v)
            for k, v in row["feature_ts"].items()
        },
        explanation=row["explanation"],
        label=row["label"],
        label_ts=row["label_ts"],
        served_at=row["served_at"],
        missing=tuple(row["missing"]),
        outputs=row["outputs"],
        tenant=row.get("tenant") or "default",
    )
