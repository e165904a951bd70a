"""The shared online store: Redis, pipelined, with timeouts and no retries.

Layout, under a prefix (default ``driftloop:f:``):

- ``<prefix>l:<key>``: a hash ``{ts, v}`` with the newest row; a Lua script replaces it
  only with a row at least as new, so re-materializing is idempotent;
- ``<prefix>e:<key>``: a sorted set of events scored by timestamp, member ``id|json``
  (the same event added twice is kept once);
- ``<prefix>m:<name>``: metadata (materialization watermarks).

Every call is one pipeline (one round trip). A Redis that is down or slow raises
:class:`BackendUnavailableError` after ``timeout_s``; nothing waits forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from driftloop.core.errors import BackendUnavailableError
from driftloop.features._online import (
    OnlineEvent,
    OnlineRead,
    OnlineRow,
    decode,
    encode,
    newest_per_key,
)

__all__ = ["RedisOnlineStore", "redis_client"]

_WRITE_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], 'ts')
if (not cur) or tonumber(cur) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'v', ARGV[2])
end
return 0
"""
_BATCH = 2_000
T = TypeVar("T")


def redis_client(url: str, timeout_s: float) -> redis.Redis:
    """A client that gives up after ``timeout_s`` (connect and read) and never retries."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )


class RedisOnlineStore:
    """Online features in Redis (one pipeline per call; timeouts; no silent retries)."""

    def __init__(self, url: str, *, prefix: str = "driftloop:f:", timeout_s: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self._client = redis_client(url, timeout_s)
        self._write_script = self._client.register_script(_WRITE_IF_NEWER)

    @classmethod
    def from_url(cls, url: str, root: object = None) -> RedisOnlineStore:
        return cls(url)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(
                f"Redis online store at {self._safe_url()} is unavailable: {exc}"
            ) from exc

    def _safe_url(self) -> str:
        _head, sep, tail = self.url.rpartition("@")
        return f"redis://***@{tail}" if sep else self.url

    def _run(self, fill: Callable[[Any], None]) -> list[Any]:
        with self._guard():
            pipe = self._client.pipeline(transaction=False)
            fill(pipe)
            result: list[Any] = pipe.execute()
            return result

    def write_rows(self, rows: Sequence[OnlineRow]) -> None:
        if not rows:
            return
        # the script must be loaded once; EVALSHA in a pipeline fails if it is not
        with self._guard():
            if not self._client.script_exists(self._write_script.sha)[0]:
                self._client.script_load(_WRITE_IF_NEWER)
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start : start + _BATCH]

            def fill(pipe: Any, chunk: Sequence[OnlineRow] = chunk) -> None:
                for row in chunk:
                    pipe.evalsha(
                        self._write_script.sha,
                        1,
                        self.prefix + "l:" + row.key,
                        row.ts_us,
                        encode(row.values),
                    )

            self._run(fill)

    def append_events(self, events: Sequence[OnlineEvent], retention_us: int) -> None:
        if not events:
            return
        newest = newest_per_key(events)

        def fill(pipe: Any) -> None:
            for ev in events:
                member = f"{ev.event_id}|{encode(ev.values)}"
                pipe.zadd(self.prefix + "e:" + ev.key, {member: ev.ts_us})
            for key, ts in newest.items():
                pipe.zremrangebyscore(self.prefix + "e:" + key, "-inf", ts - retention_us)

        self._run(fill)

    def read(
        self, row_keys: Sequence[str], event_keys: Sequence[str] = (), since_us: int = 0
    ) -> OnlineRead:
        def fill(pipe: Any) -> None:
            for key in row_keys:
                pipe.hmget(self.prefix + "l:" + key, "ts", "v")
            for key in event_keys:
                pipe.zrangebyscore(
                    self.prefix + "e:" + key, f"({since_us}", "+inf", withscores=True
                )

        replies = self._run(fill)
        out = OnlineRead()
        for key, (ts, payload) in zip(row_keys, replies[: len(row_keys)], strict=True):
            if ts is not None:
                out.rows[key] = OnlineRow(key, int(ts), decode(payload))
        for key, members in zip(event_keys, replies[len(row_keys) :], strict=True):
            if members:
                out.events[key] = [
                    (int(score), decode(member.split(b"|", 1)[1])) for member, score in members
                ]
        return out

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
