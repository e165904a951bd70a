"""Per-key rate limits (a token bucket) and per-tenant daily quotas, counted in process.

Both take the time as an argument, so a test hands in the clock it wants. With several
server processes each counts its own requests: a key limited to 10/s behind 4 workers
gets up to 40/s in total, and a daily quota is enforced per process (see
docs/serving.md, "Running it exposed").

>>> bucket = TokenBucket(rate_per_s=2.0, burst=2)
>>> [bucket.take(0.0), bucket.take(0.0), bucket.take(0.0)]
[0.0, 0.0, 0.5]
>>> bucket.take(0.5)
0.0
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

__all__ = ["DailyQuota", "TokenBucket"]


class TokenBucket:
    """``burst`` requests at once, refilled at ``rate_per_s``."""

    __slots__ = ("_at", "_tokens", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None

    def take(self, now: float) -> float:
        """Take one token at time ``now`` (seconds): 0.0 when taken, else how many
        seconds until one is there (nothing is taken then)."""
        if self._at is not None and now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now if self._at is None else max(self._at, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


class DailyQuota:
    """Requests per tenant per UTC day."""

    def __init__(self) -> None:
        self._day: date | None = None
        self._counts: dict[str, int] = {}

    def take(self, tenant: str, limit: int, now: datetime) -> float:
        """Count one request of ``tenant`` at ``now``: 0.0 when under ``limit``, else the
        seconds until the next UTC day (nothing is counted then)."""
        now = now.astimezone(UTC)
        if now.date() != self._day:
            self._day, self._counts = now.date(), {}
        used = self._counts.get(tenant, 0)
        if used >= limit:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            return (midnight - now).total_seconds()
        self._counts[tenant] = used + 1
        return 0.0

    def used(self, tenant: str) -> int:
        return self._counts.get(tenant, 0)
