"""Per-key rate limits (a token bucket) and per-tenant quotas.

The bucket and the daily count take the time as an argument, so a test hands in the
clock it wants. Where they are kept:

- a tenant's requests per day are claimed from a counter every server process shares
  (:class:`~driftloop.registry.UsageStore` in the registry's database, or
  :class:`RedisCounters` with ``serving.rate_limit_store = "redis://..."``), in blocks of
  about a hundredth of the quota, so workers and servers together grant at most the quota;
- a key's token bucket is in the process (:class:`TokenBucket`: a key limited to 10/s
  behind 4 workers gets up to 40/s in total) unless ``serving.rate_limit_store`` names a
  Redis, where every process takes from one bucket per key (:class:`RedisCounters`).

>>> bucket = TokenBucket(rate_per_s=2.0, burst=2)
>>> [bucket.take(0.0), bucket.take(0.0), bucket.take(0.0)]
[0.0, 0.0, 0.5]
>>> bucket.take(0.5)
0.0
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

__all__ = ["DailyQuota", "RedisCounters", "SharedCounter", "TokenBucket", "until_midnight"]

log = logging.getLogger(__name__)


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


def until_midnight(now: datetime) -> float:
    """Seconds from ``now`` to the next UTC day."""
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()


class SharedCounter(Protocol):
    """Where every server process claims a tenant's daily requests."""

    def claim(self, tenant: str, day: date, wanted: int, *, limit: int) -> int:
        """Grant up to ``wanted`` more, never past ``limit`` in total; how many granted."""
        ...


class DailyQuota:
    """Requests per tenant per UTC day, claimed in blocks from ``counter`` (shared by
    every process) and spent here. When the counter cannot be reached, requests are let
    through (logged): a registry outage does not stop every tenant with a quota."""

    def __init__(self, counter: SharedCounter) -> None:
        self.counter = counter
        self._held: dict[str, tuple[date, int]] = {}  # tenant -> (day, requests claimed)

    async def take(self, tenant: str, limit: int, now: datetime) -> float:
        """Count one request of ``tenant`` at ``now``: 0.0 when under ``limit``, else the
        seconds until the next UTC day (nothing is counted then)."""
        day = now.astimezone(UTC).date()
        held = self._held.get(tenant)
        if held is not None and held[0] == day and held[1] > 0:
            self._held[tenant] = (day, held[1] - 1)
            return 0.0
        block = max(1, min(1_000, limit // 100))
        try:
            granted = await asyncio.to_thread(self.counter.claim, tenant, day, block, limit=limit)
        except Exception as exc:
            log.warning("Could not count tenant %s's requests (let through): %s", tenant, exc)
            return 0.0
        if granted == 0:
            return until_midnight(now)
        held = self._held.get(tenant)  # another request may have claimed meanwhile
        kept = held[1] if held is not None and held[0] == day else 0
        self._held[tenant] = (day, kept + granted - 1)
        return 0.0


_CLAIM = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], 172800)
return grant
"""
_BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate); at = now end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisCounters:
    """Daily request counts and token buckets in Redis, shared by every server process
    (each operation one atomic script), under keys starting ``prefix``."""

    def __init__(self, url: str, *, prefix: str = "driftloop:limits:", timeout_s: float = 1.0):
        import redis  # the [redis] extra

        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._claim = self.client.register_script(_CLAIM)
        self._bucket = self.client.register_script(_BUCKET)

    def claim(self, tenant: str, day: date, wanted: int, *, limit: int) -> int:
        key = f"{self.prefix}day:{tenant}:{day.isoformat()}"
        return int(self._claim(keys=[key], args=[wanted, limit]))

    def take(self, key_id: str, rate_per_s: float, burst: int, now: float) -> float:
        """One token of key ``key_id``'s bucket at ``now``: 0.0, else the wait (s)."""
        wait = self._bucket(keys=[f"{self.prefix}bucket:{key_id}"], args=[rate_per_s, burst, now])
        return float(wait)

    def close(self) -> None:
        self.client.close()
