"""A Redis Streams consumer that feeds pushed events into a store's window aggregates.

Producers call :meth:`RedisStreamConsumer.publish` (or ``XADD`` a field ``e`` holding the
event as JSON, timestamps as microseconds or ISO strings) to ``<prefix><view>``. The
consumer reads with a consumer group, pushes each batch to the store and acknowledges
it only afterwards: delivery is at least once, and since pushing the same event twice is
a no-op, the window aggregates count every event exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import redis

from driftloop.core.errors import BackendUnavailableError
from driftloop.features._online import decode, encode
from driftloop.features._redis import redis_client
from driftloop.features._store import FeatureStore
from driftloop.features._time import to_us
from driftloop.features._windows import StreamFeatureView

__all__ = ["RedisStreamConsumer", "stream_consumer"]


class RedisStreamConsumer:
    """Reads ``<prefix><view>`` streams of a store's stream views and pushes them."""

    def __init__(
        self,
        store: FeatureStore,
        url: str,
        *,
        prefix: str = "driftloop:stream:",
        group: str = "driftloop-features",
        consumer: str = "consumer-1",
        timeout_s: float = 2.0,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.group = group
        self.consumer = consumer
        self._client = redis_client(url, timeout_s)
        self.views = [
            v.name for v in store.catalog.views.values() if isinstance(v, StreamFeatureView)
        ]
        self._groups_ready = False

    def _stream(self, view: str) -> str:
        return self.prefix + view

    def _ensure_groups(self) -> None:
        if self._groups_ready:
            return
        for view in self.views:
            try:
                self._client.xgroup_create(self._stream(view), self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def publish(self, view: str, events: pd.DataFrame | Sequence[Mapping[str, Any]]) -> int:
        """Append events of a stream view to its Redis stream (one pipeline)."""
        spec = self.store.view(view)
        records = events.to_dict("records") if isinstance(events, pd.DataFrame) else events
        try:
            pipe = self._client.pipeline(transaction=False)
            for rec in records:
                event = {str(k): v for k, v in rec.items()}
                event[spec.timestamp_field] = to_us(event[spec.timestamp_field])
                pipe.xadd(self._stream(view), {"e": encode(event)})
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(f"Redis stream unavailable: {exc}") from exc
        return len(records)

    def poll(self, *, block_ms: int | None = None, count: int = 1_000) -> int:
        """Read what is waiting (up to ``count`` per view), push it, acknowledge it."""
        try:
            self._ensure_groups()
            replies: Any = self._client.xreadgroup(
                self.group,
                self.consumer,
                {self._stream(v): ">" for v in self.views},
                count=count,
                block=block_ms,
            )
            total = 0
            for stream, entries in replies or []:
                name = stream.decode() if isinstance(stream, bytes) else str(stream)
                view = name.removeprefix(self.prefix)
                events = [decode(fields[b"e"]) for _, fields in entries]
                self.store.push(view, events)
                self._client.xack(name, self.group, *[entry_id for entry_id, _ in entries])
                total += len(events)
            return total
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(f"Redis stream unavailable: {exc}") from exc

    def run(self, stop: threading.Event, *, block_ms: int = 500) -> int:
        """Poll until ``stop`` is set; return how many events were pushed."""
        total = 0
        while not stop.is_set():
            total += self.poll(block_ms=block_ms)
        return total

    def close(self) -> None:
        self._client.close()


def stream_consumer(store: FeatureStore) -> RedisStreamConsumer | None:
    """The consumer ``settings.features.stream`` asks for (None for ``memory://``)."""
    url = store.settings.features.stream if store.settings else "memory://"
    return RedisStreamConsumer(store, url) if url.startswith("redis://") else None
