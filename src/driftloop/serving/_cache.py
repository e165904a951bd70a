"""Prediction cache: least recently used entries, each living ``ttl_s`` seconds.

Keys are (model version, canonical feature vector), so a new version never sees the
old one's scores.

>>> clock = iter([0.0, 1.0, 99.0]).__next__
>>> cache = PredictionCache(max_entries=10, ttl_s=60, clock=clock)
>>> cache.put(("v1", (1.0, 2.0)), 0.7)
>>> cache.get(("v1", (1.0, 2.0)))
0.7
>>> cache.get(("v1", (1.0, 2.0))) is None  # 99 s later: expired
True
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["PredictionCache"]


class PredictionCache:
    """An LRU map with a time to live (values: a row's model outputs); counts hits and
    misses."""

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        entry = self._entries.get(key)
        if entry is not None:
            expires, value = entry
            if self._clock() < expires:
                self._entries.move_to_end(key)
                self.hits += 1
                return value
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: Any) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
