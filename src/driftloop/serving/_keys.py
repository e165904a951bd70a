"""API keys at the door (``serving.auth = "keys"``).

A request shows ``Authorization: Bearer <key>``; the check is the SHA-256 of the key and
one dict lookup in a snapshot of the key store held in memory, which the server re-reads
about every ``serving.key_refresh_s`` (1 s): a new or revoked key takes effect within
that, and no request waits on the database. Then, in order:

- no key: 401 ``unauthorized``; a key unknown, revoked or expired: 401 as well;
- a key without the endpoint's scope: 403 ``forbidden``;
- past the key's rate (token bucket): 429 ``rate-limited`` with ``Retry-After``;
- past its tenant's requests per day: 429 ``quota-exceeded`` with ``Retry-After``;
- a prediction of a tenant whose audit records fill its audit storage quota: 507
  ``audit-quota-exceeded`` (the server's check, :meth:`Server.admit`).

The daily count is shared by every server process (the registry's database, or Redis);
the token bucket too when ``serving.rate_limit_store`` names a Redis, else it is kept in
each process (see :mod:`._ratelimit`).

A model of another tenant answers 404, as a model that does not exist would, so a key
cannot learn which names other tenants use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

from driftloop.registry import ApiKey, KeySnapshot, KeyStore, UsageStore
from driftloop.serving._errors import HttpError
from driftloop.serving._ratelimit import DailyQuota, RedisCounters, SharedCounter, TokenBucket

__all__ = ["DEFAULT_TENANT", "KeyGate", "authorization_of"]

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"


def authorization_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The ``Authorization`` header of raw ASGI headers (for the fast path)."""
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


class KeyGate:
    """Checks keys, scopes, rate limits and quotas against the last snapshot read."""

    def __init__(
        self,
        store: KeyStore,
        *,
        counter: SharedCounter | None = None,
        shared: RedisCounters | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.clock = clock  # tests set it
        self.snapshot: KeySnapshot | None = None
        self.shared = shared  # token buckets in Redis, else in this process
        self._buckets: dict[str, TokenBucket] = {}
        self._quota = DailyQuota(counter or shared or UsageStore(store.engine))

    def refresh(self) -> None:
        """Re-read the key store (blocking: the server calls it off the event loop)."""
        self.snapshot = self.store.snapshot()

    def tenant_of(self, model: str) -> str:
        """The tenant a registered model belongs to (``default`` when unknown)."""
        snapshot = self.snapshot
        return snapshot.model_tenants.get(model, DEFAULT_TENANT) if snapshot else DEFAULT_TENANT

    def authorize(self, authorization: str | None, scope: str) -> ApiKey:
        """The key a request shows, if it may use an endpoint of ``scope`` now (its rate
        checked when buckets are in process; then :meth:`admit`)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HttpError("unauthorized", "This endpoint needs 'Authorization: Bearer <key>'.")
        snapshot = self.snapshot
        if snapshot is None:
            raise HttpError("unavailable", "The key store has not been read yet; retry shortly.")
        now = self.clock()
        key = snapshot.keys.get(hashlib.sha256(token.encode()).hexdigest())
        if key is None or not key.usable(now):
            raise HttpError(
                "unauthorized", "The API key is not valid (unknown, revoked or expired)."
            )
        if scope not in key.scopes:
            raise HttpError(
                "forbidden",
                f"API key '{key.id}' lacks scope '{scope}' (it has {', '.join(key.scopes)}).",
            )
        if key.rate_per_s is not None and self.shared is None:
            bucket = self._buckets.get(key.id)
            if bucket is None:
                bucket = TokenBucket(key.rate_per_s, key.burst or 1)
                self._buckets[key.id] = bucket
            _check_rate(key, bucket.take(now.timestamp()))
        return key

    def limited(self, key: ApiKey) -> bool:
        """Whether :meth:`admit` has anything to check for ``key`` (else it need not be
        awaited: the hot path stays free of it)."""
        snapshot = self.snapshot
        return (key.rate_per_s is not None and self.shared is not None) or (
            snapshot is not None and key.tenant in snapshot.quotas
        )

    async def admit(self, key: ApiKey) -> None:
        """Take the request from the key's shared bucket and its tenant's daily quota
        (429 past either)."""
        now = self.clock()
        if key.rate_per_s is not None and self.shared is not None:
            try:
                wait = await asyncio.to_thread(
                    self.shared.take, key.id, key.rate_per_s, key.burst or 1, now.timestamp()
                )
            except Exception as exc:  # Redis down: the rate is not enforced meanwhile
                log.warning("Could not check key %s's rate (let through): %s", key.id, exc)
                wait = 0.0
            _check_rate(key, wait)
        snapshot = self.snapshot
        limit = snapshot.quotas.get(key.tenant) if snapshot is not None else None
        if limit is not None:
            wait = await self._quota.take(key.tenant, limit, now)
            if wait > 0:
                raise _too_many(
                    "quota-exceeded",
                    f"Tenant '{key.tenant}' used its {limit} requests for today (UTC).",
                    wait,
                )


def _check_rate(key: ApiKey, wait: float) -> None:
    if wait > 0:
        raise _too_many(
            "rate-limited",
            f"API key '{key.id}' is limited to {key.rate_per_s:g} requests/s "
            f"(burst {key.burst or 1}).",
            wait,
        )


def _too_many(code: str, message: str, wait_s: float) -> HttpError:
    retry = max(1, math.ceil(wait_s))
    return HttpError(
        code, f"{message} Retry after {retry} s.", status=429, headers={"retry-after": str(retry)}
    )
