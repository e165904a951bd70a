"""A circuit breaker per served version (and one for the online feature store).

Closed, it counts calls, errors and slow calls in a sliding window of one-second
buckets; it opens when the error share or the slow share crosses its threshold over
enough calls. Open, it refuses calls (the caller takes the next link of the fallback
chain) for ``open_s`` seconds, then half-opens: a few probe calls go through, and it
closes when they all succeed, or opens again on the first failure.

The clock is a parameter, so tests step time instead of sleeping:

>>> from driftloop.core.config import BreakerConfig
>>> now = [0.0]
>>> breaker = CircuitBreaker(BreakerConfig(min_requests=2, open_s=5, probes=1), lambda: now[0])
>>> breaker.record(False, 0.01); breaker.record(False, 0.01)
>>> breaker.state, breaker.allow()
('open', False)
>>> now[0] = 6.0
>>> breaker.allow(), breaker.state
(True, 'half_open')
>>> breaker.record(True, 0.01)
>>> breaker.state
'closed'
"""

from __future__ import annotations

import time
from collections.abc import Callable

from driftloop.core.config import BreakerConfig

__all__ = ["STATES", "CircuitBreaker"]

STATES = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    """Decides whether a call may go to a dependency, from how its recent calls went."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self.state = "closed"
        self._slots = max(1, round(config.window_s))
        self._width = config.window_s / self._slots
        # per bucket: [bucket number, calls, errors, slow calls]
        self._buckets = [[-1, 0, 0, 0] for _ in range(self._slots)]
        self._opened_at = 0.0
        self._probing = 0  # probe calls let through and not yet recorded
        self._probed = 0  # probe calls that succeeded
        self.opened = 0  # how many times it opened (for metrics and tests)

    def allow(self) -> bool:
        """May a call go through now? (Half-open: only the probes.)"""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            if self._clock() - self._opened_at < self.config.open_s:
                return False
            self._set("half_open")
            self._probing = self._probed = 0
        if self._probing + self._probed >= self.config.probes:
            return False
        self._probing += 1
        return True

    def record(self, ok: bool, seconds: float) -> None:
        """One call's outcome: ``ok`` False for an error; slow past ``slow_ms``."""
        slow = seconds * 1000.0 > self.config.slow_ms
        if self.state == "half_open":
            self._probing = max(0, self._probing - 1)
            if not ok or slow:
                self._open()
                return
            self._probed += 1
            if self._probed >= self.config.probes:
                self._reset()
                self._set("closed")
            return
        if self.state == "open":
            return  # a call that started before it opened
        now = self._clock()
        number = int(now / self._width)
        bucket = self._buckets[number % self._slots]
        if bucket[0] != number:
            bucket[:] = [number, 0, 0, 0]
        bucket[1] += 1
        if not ok:
            bucket[2] += 1
        if slow:
            bucket[3] += 1
        if ok and not slow:
            return  # a success never opens it: skip the window sum
        calls = errors = slows = 0
        oldest = number - self._slots
        for b in self._buckets:
            if b[0] > oldest:
                calls, errors, slows = calls + b[1], errors + b[2], slows + b[3]
        config = self.config
        if calls >= config.min_requests and (
            errors >= config.max_error_rate * calls or slows >= config.max_slow_rate * calls
        ):
            self._open()

    def cancel(self) -> None:
        """A call let through ended without telling anything about the dependency (the
        caller's request was invalid): a probe slot is free again."""
        if self.state == "half_open":
            self._probing = max(0, self._probing - 1)

    def _open(self) -> None:
        self._opened_at = self._clock()
        self.opened += 1
        self._reset()
        self._set("open")

    def _reset(self) -> None:
        for b in self._buckets:
            b[:] = [-1, 0, 0, 0]
        self._probing = self._probed = 0

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)
