"""A per-process cache of hot online rows, for views that may be served slightly stale.

Off unless built explicitly, and only for the views named, each with how stale its rows
may be served::

    online = CachedOnlineStore(RedisOnlineStore(url), max_age_s={"customer_profile": 2.0})
    store = FeatureStore(settings, definitions=..., online_store=online)

A row (or its absence) read for a named view is answered from memory for up to its
``max_age_s``; the cache holds at most ``max_entries`` keys, dropping the least recently
used. Rows written through this object drop their cached copies at once; rows written
by other processes are seen when the cached copy expires, which is the staleness the
view accepted. Events (window aggregates) are never cached: windows move with every
read's ``as_of``. TTLs are applied after the read, so a cached row still expires on time.

>>> from driftloop.features import OnlineRow, SqliteOnlineStore
>>> now = [0.0]
>>> cached = CachedOnlineStore(SqliteOnlineStore(":memory:"), {"v": 1.0}, clock=lambda: now[0])
>>> cached.write_rows([OnlineRow("v:1", 10, {"f": 1.0})])
>>> cached.read_batch(["v:1"]).row_values, cached.hits
([{'f': 1.0}], 0)
>>> cached.read_batch(["v:1"]).row_values, cached.hits
([{'f': 1.0}], 1)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from driftloop.core.errors import InvalidParameterError
from driftloop.features._online import (
    OnlineBatch,
    OnlineEvent,
    OnlineRead,
    OnlineRow,
    OnlineStore,
    read_batch,
    read_from_batch,
)
from driftloop.features._packed import Row

__all__ = ["CachedOnlineStore"]

_Entry = tuple[float, Row]  # expires at, the row as read (None: no row)


class CachedOnlineStore:
    """An :class:`OnlineStore` that keeps recent rows of the named views in memory."""

    def __init__(
        self,
        store: OnlineStore,
        max_age_s: Mapping[str, float],
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        bad = {view: age for view, age in max_age_s.items() if not age > 0}
        if bad or max_entries < 1:
            raise InvalidParameterError(
                f"CachedOnlineStore needs max_age_s > 0 per view and max_entries >= 1; got "
                f"max_age_s {dict(max_age_s)}, max_entries {max_entries}."
            )
        self.store = store
        self.max_age_s = dict(max_age_s)
        self.max_entries = max_entries
        self._clock = clock
        self._rows: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._writes = 0  # rows read while a write went on are not cached
        self.hits = 0
        self.misses = 0

    def _max_age(self, key: str) -> float | None:
        return self.max_age_s.get(key.partition(":")[0])

    def read_batch(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineBatch:
        """Rows of the named views from memory while fresh; the rest in one read."""
        now = self._clock()
        got: dict[str, Row] = {}
        with self._lock:
            writes = self._writes
            for key in row_keys:
                entry = self._rows.get(key)
                if entry is not None and entry[0] > now:
                    self._rows.move_to_end(key)
                    got[key] = entry[1]
            self.hits += len(got)
            wanted = list(dict.fromkeys(k for k in row_keys if k not in got))
            self.misses += len(wanted)
        if wanted or event_keys:
            fresh = read_batch(self.store, wanted, event_keys, since_us)
            with self._lock:
                keep = writes == self._writes
                for key, row in zip(wanted, fresh.rows, strict=True):
                    got[key] = row
                    age = self._max_age(key)
                    if keep and age is not None:
                        self._put(key, (now + age, row))
            events = fresh.events
        else:
            events = []
        return OnlineBatch(events=events, rows=[got[k] for k in row_keys])

    def _put(self, key: str, entry: _Entry) -> None:
        self._rows[key] = entry
        self._rows.move_to_end(key)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    def read(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineRead:
        batch = self.read_batch(row_keys, event_keys, since_us)
        return read_from_batch(batch, row_keys, event_keys)

    def write_rows(self, rows: Sequence[OnlineRow]) -> None:
        try:
            self.store.write_rows(rows)
        finally:
            with self._lock:
                self._writes += 1
                for row in rows:
                    self._rows.pop(row.key, None)

    def append_events(self, events: Sequence[OnlineEvent], retention_us: int) -> None:
        self.store.append_events(events, retention_us)

    def get_meta(self, name: str) -> str | None:
        return self.store.get_meta(name)

    def set_meta(self, name: str, value: str) -> None:
        self.store.set_meta(name, value)

    def clear(self) -> None:
        """Forget every cached row."""
        with self._lock:
            self._rows.clear()

    def close(self) -> None:
        self.clear()
        self.store.close()

    def __repr__(self) -> str:
        return f"CachedOnlineStore({self.store!r}, {self.max_age_s!r})"
