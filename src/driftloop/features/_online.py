"""The online store protocol and its embedded implementation, SQLite in WAL mode.

An online store keeps, per key (``"<view>:<entity key>"``), the newest feature row and,
for stream views, the recent events its window aggregates are computed from. Writes
are idempotent: a row only replaces one with an older event time (or, at the same event
time, one created no later: a missing created time counts as the oldest), an event
with the same id is kept once. One :meth:`OnlineStore.read` fetches rows and events for
many keys in one round trip; :func:`read_batch` is the same read in the order asked,
without per-row objects, which is what serving uses.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

import orjson

from driftloop.core.errors import BackendUnavailableError, ConflictError
from driftloop.features._packed import Row, pack_row, row_columns, unpack_row

__all__ = [
    "OnlineBatch",
    "OnlineEvent",
    "OnlineRead",
    "OnlineRow",
    "OnlineStore",
    "SqliteOnlineStore",
    "decode",
    "decode_all",
    "encode",
    "read_batch",
]


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def encode(values: Any) -> str:
    """Compact JSON; numpy scalars become Python numbers, timestamps ISO strings.

    The standard library writes it (not orjson): it keeps infinities and NaN, which
    orjson would turn into ``null``.
    """
    return json.dumps(values, separators=(",", ":"), default=_default)


def decode(text: str | bytes) -> Any:
    """Parse :func:`encode`'s JSON: orjson (5-8x faster on rows of floats), or the
    standard library for what orjson refuses (``NaN``, ``Infinity``, integers past 64
    bits), so every stored value reads back as written."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def decode_all(texts: Sequence[str | bytes]) -> list[Any]:
    """:func:`decode` of many payloads: one ``map`` of orjson (a C loop), or one by one
    when some payload needs the standard library."""
    try:
        return list(map(orjson.loads, texts))
    except orjson.JSONDecodeError:
        return [decode(t) for t in texts]


@dataclass(frozen=True)
class OnlineRow:
    """The newest feature values of one entity in one view, with their event time and,
    when the view has one, their created time (which orders rows of equal event time)."""

    key: str
    ts_us: int
    values: dict[str, Any]
    created_us: int | None = None


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


Events = list[tuple[int, dict[str, Any]]]


class OnlineBatch:
    """One round trip's answer in the order asked, one entry per key.

    ``rows[i]`` is the row of ``row_keys[i]`` as read (packed bytes, ``(ts, values)``,
    or ``None``: no row); ``row_ts`` and ``row_values`` decode them one by one on first
    use, and :meth:`columns` takes features out of many at once (packed rows of one view
    as one numpy matrix). ``events[i]`` are the events of ``event_keys[i]`` newer than
    ``since_us``, oldest first. A key asked twice may share one values dict: treat them
    as read-only.

    >>> batch = OnlineBatch([10, None], [{"f": 1.5}, None], [])
    >>> batch.columns(0, 2, ["f"], None)[0]
    [[1.5, None]]
    """

    def __init__(
        self,
        row_ts: Sequence[int | None] = (),
        row_values: Sequence[dict[str, Any] | None] = (),
        events: list[Events] | None = None,
        *,
        rows: list[Row] | None = None,
    ) -> None:
        if rows is None:
            rows = [
                None if ts is None or values is None else (ts, values)
                for ts, values in zip(row_ts, row_values, strict=True)
            ]
        self.rows = rows
        self.events: list[Events] = events if events is not None else []

    @functools.cached_property
    def _decoded(self) -> list[tuple[int, dict[str, Any]] | None]:
        return [unpack_row(r) if type(r) is bytes else cast("Any", r) for r in self.rows]

    @property
    def row_ts(self) -> list[int | None]:
        return [None if r is None else r[0] for r in self._decoded]

    @property
    def row_values(self) -> list[dict[str, Any] | None]:
        return [None if r is None else r[1] for r in self._decoded]

    def __eq__(self, other: object) -> bool:
        """Equal when the same rows and events were read, however they are stored."""
        if not isinstance(other, OnlineBatch):
            return NotImplemented
        return self._decoded == other._decoded and self.events == other.events

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return f"OnlineBatch(rows={self._decoded!r}, events={self.events!r})"

    def columns(
        self, start: int, stop: int, feats: Sequence[str], oldest_us: int | None
    ) -> tuple[list[list[Any]], list[datetime | None]]:
        """Feature columns and event times of rows ``start:stop`` (see
        :func:`~driftloop.features._packed.row_columns`)."""
        return row_columns(self.rows[start:stop], feats, oldest_us)


class OnlineStore(Protocol):
    """Where serving reads features from. Every method is one round trip or one batch."""

    def write_rows(self, rows: Sequence[OnlineRow]) -> None:
        """Upsert rows; a row older than the stored one for its key is ignored (older:
        an earlier event time, or the same event time and an earlier created time)."""
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


def read_batch(
    store: OnlineStore,
    row_keys: Sequence[str],
    event_keys: Sequence[str] = (),
    since_us: int = 0,
) -> OnlineBatch:
    """``store.read`` in the order asked: the store's own ``read_batch`` when it has
    one (both built-in stores do), else built from :meth:`OnlineStore.read`."""
    own = getattr(store, "read_batch", None)
    if own is not None:
        batch: OnlineBatch = own(row_keys, event_keys, since_us)
        return batch
    got = store.read(row_keys, event_keys, since_us)
    rows = [got.rows.get(k) for k in row_keys]
    return OnlineBatch(
        events=[got.events.get(k, []) for k in event_keys],
        rows=[(r.ts_us, r.values) if r is not None else None for r in rows],
    )


def read_from_batch(
    batch: OnlineBatch, row_keys: Sequence[str], event_keys: Sequence[str]
) -> OnlineRead:
    """The :class:`OnlineRead` of a batch (what ``read`` returns, built from ``read_batch``)."""
    out = OnlineRead()
    for key, ts, values in zip(row_keys, batch.row_ts, batch.row_values, strict=True):
        if ts is not None and values is not None:
            out.rows[key] = OnlineRow(key, ts, values)
    for key, events in zip(event_keys, batch.events, strict=True):
        if events:
            out.events[key] = events
    return out


def newest_per_key(events: Sequence[OnlineEvent]) -> dict[str, int]:
    newest: dict[str, int] = {}
    for ev in events:
        if ev.ts_us > newest.get(ev.key, -(2**62)):
            newest[ev.key] = ev.ts_us
    return newest


def _payload(row: OnlineRow) -> str | bytes:
    """A row's stored values: packed (:mod:`._packed`) when all floats or nulls, else JSON."""
    return pack_row(row.ts_us, row.created_us, row.values) or encode(row.values)


_LAYOUT = 3
"""The SQLite layout (``PRAGMA user_version``). 0/1: ``latest`` without ``cr`` (read as
is; opening adds the column); 2: ``latest`` rows carry their created time; 3: a row's
payload may be packed bytes (a BLOB) instead of JSON text. Opening an older file brings
it to 3 in place; its JSON rows read as before until re-materialized."""
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS latest (key TEXT PRIMARY KEY, ts INTEGER NOT NULL, "
    "payload TEXT NOT NULL, cr INTEGER) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS events (key TEXT NOT NULL, ts INTEGER NOT NULL, "
    "id TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (key, ts, id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# A missing created time orders before every real one (-2**63 + 1: SQLite parses the
# literal -2**63 as a float).
_NO_CREATED = "-9223372036854775807"
_UPSERT = (
    "INSERT INTO latest (key, ts, cr, payload) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO "
    "UPDATE SET ts = excluded.ts, cr = excluded.cr, payload = excluded.payload "
    "WHERE excluded.ts > latest.ts OR (excluded.ts = latest.ts AND "
    f"coalesce(excluded.cr, {_NO_CREATED}) >= coalesce(latest.cr, {_NO_CREATED}))"
)
_CHUNK = 500


class SqliteOnlineStore:
    """The embedded online store: one SQLite file in WAL mode (or ``:memory:``).

    ``latest`` is a ``WITHOUT ROWID`` table keyed by the row key, so one ``IN (...)``
    statement reads a batch by primary-key lookups and each row is one JSON payload,
    decoded once per distinct key. The file is read through a memory map of up to
    ``mmap_bytes`` (0: none).
    """

    def __init__(
        self, path: str | Path, *, timeout_s: float = 5.0, mmap_bytes: int = 256 << 20
    ) -> None:
        self.path = str(path)
        self.mmap_bytes = mmap_bytes
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # reads map the file instead of copying pages through SQLite's 2 MB cache: a
            # batch of 1,000 random keys of a 60 MB table fetches in half the time
            self._db.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"SQLite online store {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._upgrade()

    @classmethod
    def from_url(cls, url: str, root: Path) -> SqliteOnlineStore:
        from driftloop.core.urls import local_path

        rest = url.partition("://")[2]
        return cls(":memory:" if rest in ("", "/:memory:") else local_path(url, root))

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _upgrade(self) -> None:
        """Create the tables, or bring an older file to :data:`_LAYOUT` in place."""
        try:
            if self._version() == _LAYOUT:
                return
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"SQLite online store {self.path}: {exc}") from exc
        with self._transaction() as db:
            version = self._version()  # again, now that this process holds the write lock
            if version > _LAYOUT:
                raise ConflictError(
                    f"SQLite online store {self.path} has layout {version}, newer than this "
                    f"driftloop's {_LAYOUT}: upgrade driftloop, or point it at a new file and "
                    "run `driftloop features materialize`."
                )
            for statement in _SCHEMA:
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(latest)")}
            if "cr" not in columns:  # layout 1: same rows, no created time (read as oldest)
                db.execute("ALTER TABLE latest ADD COLUMN cr INTEGER")
            db.execute(f"PRAGMA user_version = {_LAYOUT}")

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
            db.executemany(_UPSERT, [(r.key, r.ts_us, r.created_us, _payload(r)) for r in rows])

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
        batch = self.read_batch(row_keys, event_keys, since_us)
        return read_from_batch(batch, row_keys, event_keys)

    def read_batch(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineBatch:
        """Rows and events in the order asked (see :class:`OnlineBatch`)."""
        rows: list[tuple[str, int, str | bytes]] = []
        events: list[tuple[str, int, str]] = []
        with self._lock:
            try:
                for start in range(0, len(row_keys), _CHUNK):
                    chunk = row_keys[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows += self._db.execute(
                        f"SELECT key, ts, payload FROM latest WHERE key IN ({marks})", chunk
                    ).fetchall()
                for start in range(0, len(event_keys), _CHUNK):
                    chunk = event_keys[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    events += self._db.execute(
                        f"SELECT key, ts, payload FROM events WHERE key IN ({marks}) AND ts > ? "
                        "ORDER BY key, ts",
                        [*chunk, since_us],
                    ).fetchall()
            except sqlite3.OperationalError as exc:
                raise BackendUnavailableError(f"SQLite online store {self.path}: {exc}") from exc
        # JSON rows are decoded outside the lock, once per distinct key; packed rows
        # stay bytes until the batch's columns are taken out at once
        text = [r for r in rows if type(r[2]) is not bytes]
        found: dict[str, Row] = {r[0]: r[2] for r in rows if type(r[2]) is bytes}
        for r, values in zip(text, decode_all([r[2] for r in text]), strict=True):
            found[r[0]] = (r[1], values)
        by_key: dict[str, Events] = {}
        for e, values in zip(events, decode_all([e[2] for e in events]), strict=True):
            by_key.setdefault(e[0], []).append((e[1], values))
        return OnlineBatch(
            events=[by_key.get(k, []) for k in event_keys], rows=[found.get(k) for k in row_keys]
        )

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
