"""The local spool: where audit rows wait, durably, while the audit store is down.

A spool is one SQLite file per writer in a spool folder, ``spool-<pid>-<random>.db``,
written through :class:`SqliteAuditLog` with ``synchronous=full`` (each append is fsynced
before the callers are told their records are durable), so it holds exactly the rows the
main log would. Beside it, ``spool-<pid>-<random>.lock`` carries an exclusive
``flock`` for as long as its writer lives: a file whose lock can be taken belongs to a
writer that has closed or died (``kill -9`` releases the lock with the process), and
:func:`claim_orphans` hands it to a new writer to replay. Two live processes sharing the
folder never replay the same file.

Rows leave a spool oldest first; they are deleted only once the main log has committed
them, and inserting them there skips ids it has already, so a replay interrupted between
the two steps (or repeated) stores each prediction once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftloop.audit._batch import AuditBatch
from driftloop.audit._record import AuditRecord
from driftloop.audit._sql import COLUMNS, _decode, _record
from driftloop.audit._sqlite import SqliteAuditLog

__all__ = ["AuditSpool", "as_records", "claim_orphans"]

log = logging.getLogger(__name__)

_CHUNK = 500
Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]  # predictions, entities


class AuditSpool:
    """One spool file, locked by this process; ``pending`` counts the rows it holds."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._closing = threading.Lock()
        self._closed = False
        self.log = SqliteAuditLog(path, synchronous="full")
        # entity rows straight into audit_entities, which rows leave by id: no staging
        # (the spool writes at the main log's pace, fsynced, and is short-lived)
        self.log.entity_merge_rows = None
        with self.log._transaction() as cur:  # rows leave by id: find their entities fast
            cur.execute(
                "CREATE INDEX IF NOT EXISTS spool_entities_prediction "
                "ON audit_entities (prediction_id)"
            )
        self.pending = self.count()

    @classmethod
    def create(cls, folder: Path) -> AuditSpool:
        """A new, empty spool of this process in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"spool-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: never held
        return cls(folder / f"{name}.db", fd)

    # -- in -------------------------------------------------------------------------
    def append(self, batches: Sequence[AuditBatch], records: Sequence[AuditRecord]) -> int:
        """Store rows durably (fsynced) and return how many."""
        self.log.write_batches(batches, records)
        n = len(records) + sum(len(b) for b in batches)
        self.pending += n
        return n

    # -- out ------------------------------------------------------------------------
    def oldest(self, limit: int) -> Rows:
        """Up to ``limit`` of the oldest rows (raw, :data:`COLUMNS`) with their entities."""
        with self.log._transaction(write=False) as cur:
            cur.execute(
                f"SELECT {', '.join(COLUMNS)} FROM audit_predictions ORDER BY rowid LIMIT ?",
                [limit],
            )
            rows = [tuple(r) for r in cur.fetchall()]
            entities: list[tuple[Any, ...]] = []
            ids = [r[0] for r in rows]
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                cur.execute(
                    "SELECT name, value, ts_us, prediction_id FROM audit_entities "
                    f"WHERE prediction_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                entities += [tuple(e) for e in cur.fetchall()]
        return rows, entities

    def remove(self, ids: Sequence[str]) -> None:
        """Delete rows the main log has committed (the caller counts ``pending`` again,
        under the lock it appends under)."""
        with self.log._transaction() as cur:
            for table in ("entities", "predictions"):
                for i in range(0, len(ids), _CHUNK):
                    chunk = list(ids[i : i + _CHUNK])
                    cur.execute(
                        f"DELETE FROM audit_{table} "
                        f"WHERE prediction_id IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    )

    def count(self) -> int:
        with self.log._transaction(write=False) as cur:
            cur.execute("SELECT COUNT(*) FROM audit_predictions")
            return int(cur.fetchone()[0])

    def close(self) -> None:
        """Release the file; delete it if it holds no row (else the next writer on the
        folder replays it). Closing twice does nothing."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        empty = False
        with contextlib.suppress(Exception):
            empty = self.count() == 0
        self.log.close()
        if empty:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.path.with_suffix(".lock").unlink(missing_ok=True)
        os.close(self._lock_fd)  # releases the flock


def as_records(rows: Sequence[tuple[Any, ...]]) -> list[AuditRecord]:
    """Raw rows as records, for a main log that is not SQL."""
    return [_record(_decode((*row, None, None))) for row in rows]


def claim_orphans(folder: Path) -> list[AuditSpool]:
    """Spools in ``folder`` that no live writer holds, locked for this one."""
    claimed: list[AuditSpool] = []
    if not folder.is_dir():
        return claimed
    for lock in sorted(folder.glob("spool-*.lock")):
        try:
            fd = os.open(lock, os.O_RDWR)  # no O_CREAT: never bring back a deleted lock
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer lives
            os.close(fd)
            continue
        db = lock.with_suffix(".db")
        if not db.exists():  # replayed and deleted by another writer meanwhile
            lock.unlink(missing_ok=True)
            os.close(fd)
            continue
        try:
            claimed.append(AuditSpool(db, fd))
        except Exception:  # unreadable: left in place for a person to look at
            log.exception("Audit spool %s cannot be opened; it is left as it is.", db)
            os.close(fd)
    return claimed
