"""The online store protocol and its embedded implementation, SQLite in WAL mode.

An online store keeps, per key (``"<view>:<entity key>"``), the newest feature row and,
for stream views, the recent events its window aggregates are computed from. Writes
are idempotent: a row only replaces an older one, an event with the same id is kept
once. One :meth:`OnlineStore.read` fetches rows and events for many keys in one round
trip.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from driftloop.core.errors import BackendUnavailableError

__all__ = [
    "OnlineEvent",
    "OnlineRead",
    "OnlineRow",
    "OnlineStore",
    "SqliteOnlineStore",
    "decode",
    "encode",
]


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def encode(values: Any) -> str:
    """Compact JSON; numpy scalars become Python numbers, timestamps ISO strings."""
    return json.dumps(values, separators=(",", ":"), default=_default)


def decode(text: str | bytes) -> Any:
    return json.loads(text)


@dataclass(frozen=True)
class OnlineRow:
    """The newest feature values of one entity in one view, with their event time."""

    key: str
    ts_us: int
    values: dict[str, Any]


@dataclass(frozen=True)
class OnlineEvent:
    """One event of a stream view; ``event_id`` makes re-pushing it a no-op."""

    key: str
    ts_us: int
    event_id: str
    values: dict[str, Any]


@dataclass
class OnlineRead:
    """What one round trip returned: rows by key, and events by key (oldest first)."""

    rows: dict[str, OnlineRow] = field(default_factory=dict)
    events: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)


class OnlineStore(Protocol):
    """Where serving reads features from. Every method is one round trip or one batch."""

    def write_rows(self, rows: Sequence[OnlineRow]) -> None:
        """Upsert rows; a row older than the stored one for its key is ignored."""
        ...

    def append_events(self, events: Sequence[OnlineEvent], retention_us: int) -> None:
        """Add events (once per id) and drop those older than ``retention_us`` before
        the newest event of their key in this batch."""
        ...

    def read(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineRead:
        """Rows for ``row_keys`` and events newer than ``since_us`` for ``event_keys``."""
        ...

    def get_meta(self, name: str) -> str | None: ...

    def set_meta(self, name: str, value: str) -> None: ...

    def close(self) -> None: ...


def newest_per_key(events: Sequence[OnlineEvent]) -> dict[str, int]:
    newest: dict[str, int] = {}
    for ev in events:
        if ev.ts_us > newest.get(ev.key, -(2**62)):
            newest[ev.key] = ev.ts_us
    return newest


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS latest (key TEXT PRIMARY KEY, ts INTEGER NOT NULL, "
    "payload TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS events (key TEXT NOT NULL, ts INTEGER NOT NULL, "
    "id TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (key, ts, id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_CHUNK = 500


class SqliteOnlineStore:
    """The embedded online store: one SQLite file in WAL mode (or ``:memory:``)."""

    def __init__(self, path: str | Path, *, timeout_s: float = 5.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"SQLite online store {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, root: Path) -> SqliteOnlineStore:
        from driftloop.core.urls import local_path

        rest = url.partition("://")[2]
        return cls(":memory:" if rest in ("", "/:memory:") else local_path(url, root))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise BackendUnavailableError(f"SQLite online store {self.path}: {exc}") from exc

    def write_rows(self, rows: Sequence[OnlineRow]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO latest (key, ts, payload) VALUES (?, ?, ?) ON CONFLICT (key) DO "
                "UPDATE SET ts = excluded.ts, payload = excluded.payload "
                "WHERE excluded.ts >= latest.ts",
                [(r.key, r.ts_us, encode(r.values)) for r in rows],
            )

    def append_events(self, events: Sequence[OnlineEvent], retention_us: int) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO events (key, ts, id, payload) VALUES (?, ?, ?, ?)",
                [(e.key, e.ts_us, e.event_id, encode(e.values)) for e in events],
            )
            db.executemany(
                "DELETE FROM events WHERE key = ? AND ts <= ?",
                [(k, ts - retention_us) for k, ts in newest_per_key(events).items()],
            )

    def read(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineRead:
        out = OnlineRead()
        with self._lock:
            for start in range(0, len(row_keys), _CHUNK):
                chunk = row_keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, ts, payload in self._db.execute(
                    f"SELECT key, ts, payload FROM latest WHERE key IN ({marks})", chunk
                ):
                    out.rows[key] = OnlineRow(key, ts, decode(payload))
            for start in range(0, len(event_keys), _CHUNK):
                chunk = event_keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, ts, payload in self._db.execute(
                    f"SELECT key, ts, payload FROM events WHERE key IN ({marks}) AND ts > ? "
                    "ORDER BY key, ts",
                    [*chunk, since_us],
                ):
                    out.events.setdefault(key, []).append((ts, decode(payload)))
        return out

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({self.path!r})"
