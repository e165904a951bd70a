"""The shared online store: Redis, one round trip per call, timeouts and no retries.

Layout 3, under a prefix (default ``driftloop:f:``):

- ``<prefix>r:<key>``: a string, the newest row of one entity in one view: packed bytes
  (:mod:`driftloop.features._packed`: event and created times, float values, names) when
  its values are all floats or nulls, else JSON ``[ts, created, {values}]`` (``created``
  may be ``null``), so a batch of rows is one ``MGET``; a Lua script replaces it only
  with a row at least as new (event time, then created time; it reads both forms), so
  re-materializing is idempotent;
- ``<prefix>e:<key>``: a sorted set of events scored by timestamp, member ``id|json``
  (the same event added twice is kept once), read for many keys by one script call;
- ``<prefix>m:<name>``: metadata (materialization watermarks);
- ``<prefix>layout``: ``3``, written with the first rows of this layout.

Layout 2 is layout 3 with JSON rows only: it is read as it is, and the first write of
this version marks the store ``3`` (after which a driftloop of layout 2 refuses it:
upgrade every reader before writing). Its rows are packed as they are rewritten:
``driftloop features materialize`` over the views' history packs them all.

Layout 1 (driftloop before the layout marker) kept rows in hashes ``<prefix>l:<key>``
``{ts, v}``. A store without the marker is read in both layouts (in one ``MULTI``), so an
upgraded server reads an old store exactly; the first write of this version migrates
every old row (each key atomically, by a script) and then sets the marker, after which
reads take one ``MGET``. A store marked with a newer layout is refused.

Several projects can share one Redis database, each under its own prefix: the URL's
``prefix`` query parameter sets it (``redis://host:6379/0?prefix=fraud:f:``; see
:meth:`RedisOnlineStore.from_url`).

A Redis that is down or slow raises :class:`BackendUnavailableError` after
``timeout_s``; nothing waits forever.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from driftloop.core.errors import BackendUnavailableError, ConflictError, InvalidParameterError
from driftloop.features._online import (
    Events,
    OnlineBatch,
    OnlineEvent,
    OnlineRead,
    OnlineRow,
    decode_all,
    encode,
    newest_per_key,
    read_from_batch,
)
from driftloop.features._packed import MAGIC, Row, pack_row

__all__ = ["RedisOnlineStore", "redis_client"]

LAYOUT = 3
_READABLE = (b"2", b"3")  # layout 2 rows are layout 3's JSON rows

# "Is ARGV's (ts, created) at least as new as the packed row `cur`?" A missing created
# time (null) orders before every real one. Timestamps are microseconds, exact in Lua's
# doubles up to 2**53 (year 2255).
_NEWER = """
local function i64(s, at)
  local b = {string.byte(s, at, at + 7)}
  local v = 0
  if b[8] < 128 then
    for i = 8, 1, -1 do v = v * 256 + b[i] end
    return v
  end
  for i = 8, 1, -1 do v = v * 256 + (255 - b[i]) end
  return -v - 1
end
local function stamps(cur)
  if string.byte(cur, 1) == 209 then
    local ccr = i64(cur, 10)
    if ccr < -9.2e18 then ccr = nil end
    return i64(cur, 2), ccr
  end
  local cts, ccr = string.match(cur, '^%[(%-?%d+),([^,]*),')
  return tonumber(cts), tonumber(ccr)
end
local function newer(cur, ts, cr)
  if not cur then return true end
  local cts, ccr = stamps(cur)
  ts = tonumber(ts)
  if ts ~= cts then return ts > cts end
  cr = tonumber(cr)
  if cr == nil then return ccr == nil end
  return ccr == nil or cr >= ccr
end
"""
# KEYS[1] row key; ARGV: ts, created ('' for none), packed row
_WRITE_IF_NEWER = (
    _NEWER
    + """
if newer(redis.call('GET', KEYS[1]), ARGV[1], ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
end
return 0
"""
)
# KEYS[1] layout-1 hash, KEYS[2] row key: move the old row over (unless a newer one is
# there) and delete it, in one step, so a reader sees the row in one layout or the other
_MIGRATE_V1 = (
    _NEWER
    + """
local old = redis.call('HMGET', KEYS[1], 'ts', 'v')
if not old[1] then return 0 end
if newer(redis.call('GET', KEYS[2]), old[1], '') then
  redis.call('SET', KEYS[2], '[' .. old[1] .. ',null,' .. old[2] .. ']')
end
redis.call('DEL', KEYS[1])
return 1
"""
)
# KEYS: event keys; ARGV[1]: since (exclusive). One reply per key: member, score, ...
_READ_EVENTS = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('ZRANGEBYSCORE', key, '(' .. ARGV[1], '+inf', 'WITHSCORES')
end
return out
"""
_BATCH = 2_000


def redis_client(url: str, timeout_s: float) -> redis.Redis:
    """A client that gives up after ``timeout_s`` (connect and read) and never retries."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )


def pack(row: OnlineRow) -> str | bytes:
    """A row as stored: packed (:mod:`driftloop.features._packed`) when its values are all
    floats or nulls, else JSON ``[ts, created, {values}]``."""
    packed = pack_row(row.ts_us, row.created_us, row.values)
    if packed is not None:
        return packed
    created = "null" if row.created_us is None else str(row.created_us)
    return f"[{row.ts_us},{created},{encode(row.values)}]"


class RedisOnlineStore:
    """Online features in Redis (one round trip per call; timeouts; no silent retries)."""

    def __init__(self, url: str, *, prefix: str = "driftloop:f:", timeout_s: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self._client = redis_client(url, timeout_s)
        self._scripts = {
            name: self._client.register_script(body)
            for name, body in (
                ("write", _WRITE_IF_NEWER),
                ("migrate", _MIGRATE_V1),
                ("events", _READ_EVENTS),
            )
        }
        self._layout_key = prefix + "layout"
        self._row = prefix + "r:"
        self._events = prefix + "e:"
        self._marked = False  # the layout marker was seen: rows are read by MGET alone
        self._current = False  # ... and it is this layout's (written by this version)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(
                f"Redis online store at {self._safe_url()} is unavailable: {exc}"
            ) from exc

    @classmethod
    def from_url(cls, url: str, root: object = None, *, timeout_s: float = 1.0) -> RedisOnlineStore:
        """The store a ``redis://`` URL names (``root`` is unused: the signature of the
        embedded stores' ``from_url``); its ``prefix`` query parameter, when given,
        replaces the default key prefix (``driftloop:f:``).

        >>> RedisOnlineStore.split_prefix("redis://cache:6379/0?prefix=fraud:f:")
        ('redis://cache:6379/0', 'fraud:f:')
        >>> RedisOnlineStore.split_prefix("redis://cache:6379/0?ssl_cert_reqs=none")
        ('redis://cache:6379/0?ssl_cert_reqs=none', None)
        """
        plain, prefix = cls.split_prefix(url)
        if prefix is None:
            return cls(plain, timeout_s=timeout_s)
        return cls(plain, prefix=prefix, timeout_s=timeout_s)

    @staticmethod
    def split_prefix(url: str) -> tuple[str, str | None]:
        """``url`` without its ``prefix`` query parameter (which redis-py would refuse),
        and that prefix (None when absent)."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [value for name, value in query if name == "prefix"]
        if not prefixes:
            return url, None
        if len(prefixes) > 1 or not prefixes[0]:
            raise InvalidParameterError(
                f"features.online_store: 'prefix' must be given once and not be empty; got "
                f"{prefixes!r}."
            )
        rest = urlencode([(name, value) for name, value in query if name != "prefix"])
        return urlunsplit(parts._replace(query=rest)), prefixes[0]

    def _safe_url(self) -> str:
        _head, sep, tail = self.url.rpartition("@")
        return f"redis://***@{tail}" if sep else self.url

    def _run(self, fill: Callable[[Any], None], *, transaction: bool = False) -> list[Any]:
        """One pipeline; loads the scripts and runs it again if Redis had lost them."""
        with self._guard():
            for attempt in (1, 2):
                pipe = self._client.pipeline(transaction=transaction)
                fill(pipe)
                try:
                    result: list[Any] = pipe.execute()
                except redis.exceptions.NoScriptError:
                    if attempt == 2:
                        raise
                    for script in self._scripts.values():
                        self._client.script_load(script.script)
                    continue
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_layout(self, marker: bytes | None) -> bool:
        """Whether the store is marked with a layout this version reads (2 or 3);
        refuse a newer one."""
        if marker is None:
            return False
        if marker not in _READABLE:
            raise ConflictError(
                f"Redis online store at {self._safe_url()} (prefix {self.prefix!r}) has layout "
                f"{marker.decode(errors='replace')}, not {LAYOUT}: upgrade driftloop, or use a "
                "new prefix or database and run `driftloop features materialize`."
            )
        self._marked = True
        self._current = marker == str(LAYOUT).encode()
        return True

    def _ensure_layout(self) -> None:
        """Before the first write: migrate layout-1 rows, then mark the store (a store of
        layout 2 is marked 3: its rows are read as they are)."""
        if self._current:
            return
        with self._guard():
            marker: Any = self._client.get(self._layout_key)
            if self._check_layout(marker):
                if not self._current:
                    self._client.set(self._layout_key, str(LAYOUT))
                    self._current = True
                return
            pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "l:*"
            cursor: int = 0
            while True:  # one pipeline of per-key migrations per page of the scan
                cursor, page = self._client.scan(cursor, match=pattern, count=1_000, _type="hash")
                if page:
                    self._run(partial(self._migrate, old_keys=page))
                if cursor == 0:
                    break
            self._client.set(self._layout_key, str(LAYOUT))
            self._marked = self._current = True

    def _migrate(self, pipe: Any, old_keys: Sequence[bytes | str]) -> None:
        sha = self._scripts["migrate"].sha
        skip = len(self.prefix) + len("l:")
        for raw in old_keys:
            key = raw.decode() if isinstance(raw, bytes) else raw
            pipe.evalsha(sha, 2, key, self._row + key[skip:])

    def write_rows(self, rows: Sequence[OnlineRow]) -> None:
        if not rows:
            return
        self._ensure_layout()
        sha = self._scripts["write"].sha
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start : start + _BATCH]

            def fill(pipe: Any, chunk: Sequence[OnlineRow] = chunk) -> None:
                for row in chunk:
                    created = "" if row.created_us is None else row.created_us
                    pipe.evalsha(sha, 1, self._row + row.key, row.ts_us, created, pack(row))

            self._run(fill)

    def append_events(self, events: Sequence[OnlineEvent], retention_us: int) -> None:
        if not events:
            return
        self._ensure_layout()
        newest = newest_per_key(events)

        def fill(pipe: Any) -> None:
            for ev in events:
                member = f"{ev.event_id}|{encode(ev.values)}"
                pipe.zadd(self._events + ev.key, {member: ev.ts_us})
            for key, ts in newest.items():
                pipe.zremrangebyscore(self._events + key, "-inf", ts - retention_us)

        self._run(fill)

    def read(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineRead:
        batch = self.read_batch(row_keys, event_keys, since_us)
        return read_from_batch(batch, row_keys, event_keys)

    def read_batch(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineBatch:
        """Rows (one ``MGET``) and events (one script call) in one round trip."""
        names = [self._row + k for k in row_keys]
        if not self._marked:
            return self._read_unmarked(names, row_keys, event_keys, since_us)
        if not event_keys:
            if not names:
                return OnlineBatch()
            with self._guard():
                packed: Any = self._client.mget(names)
            return _batch(packed, [], len(event_keys))
        replies = self._run(lambda pipe: self._fill(pipe, names, event_keys, since_us))
        return _batch(replies[0] if names else [], replies[-1], len(event_keys))

    def _fill(
        self, pipe: Any, names: Sequence[str], event_keys: Sequence[str], since_us: int
    ) -> None:
        if names:
            pipe.mget(names)
        if event_keys:
            keys = [self._events + k for k in event_keys]
            pipe.evalsha(self._scripts["events"].sha, len(keys), *keys, since_us)

    def _read_unmarked(
        self,
        names: Sequence[str],
        row_keys: Sequence[str],
        event_keys: Sequence[str],
        since_us: int,
    ) -> OnlineBatch:
        """Before the marker: rows in either layout, read atomically with the marker."""

        def fill(pipe: Any) -> None:
            pipe.get(self._layout_key)
            for key in row_keys:
                pipe.hmget(self.prefix + "l:" + key, "ts", "v")
            self._fill(pipe, names, event_keys, since_us)

        replies = self._run(fill, transaction=True)
        marked = self._check_layout(replies[0])
        old = replies[1 : 1 + len(row_keys)]
        packed: list[bytes | None] = list(replies[1 + len(row_keys)]) if names else []
        if not marked:
            for i, (ts, values) in enumerate(old):
                if packed[i] is None and ts is not None:
                    packed[i] = b"[" + ts + b",null," + values + b"]"
        return _batch(packed, replies[-1] if event_keys else [], len(event_keys))

    def get_meta(self, name: str) -> str | None:
        with self._guard():
            value = self._client.get(self.prefix + "m:" + name)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def set_meta(self, name: str, value: str) -> None:
        with self._guard():
            self._client.set(self.prefix + "m:" + name, value)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self._safe_url()!r})"


def _batch(packed: Sequence[bytes | None], events: Sequence[Any], n_events: int) -> OnlineBatch:
    """The batch of ``MGET``'s values (packed rows stay bytes; JSON ``[ts, created,
    {values}]`` rows are decoded by one ``map`` of orjson) and the events' replies."""
    text = [v for v in packed if v is not None and v[0] != MAGIC]
    rows: list[Row]
    if not text:
        rows = list(packed)
    else:
        decoded = iter(decode_all(text))
        rows = [
            None if v is None else v if v[0] == MAGIC else _ts_values(next(decoded)) for v in packed
        ]
    # per key: member, score, member, score, ... ; a member is b"<id>|<json>"
    out: list[Events] = [
        list(
            zip(
                [int(float(score)) for score in flat[1::2]],
                decode_all([member.split(b"|", 1)[1] for member in flat[0::2]]),
                strict=True,
            )
        )
        for flat in (events if n_events else ())
    ]
    return OnlineBatch(events=out, rows=rows)


def _ts_values(row: list[Any]) -> tuple[int, dict[str, Any]]:
    return row[0], row[2]
