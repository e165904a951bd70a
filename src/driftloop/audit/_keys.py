"""Idempotency keys, kept in the audit store so that every worker, and a restarted server,
answers a retried request the same way.

A request carrying a key first *claims* it: the store records the key with the SHA-256
of the request and ``status`` 0 (in progress), in one transaction, so of two workers
receiving the same key at once exactly one gets ``new``. That one answers the request
and *completes* the key with the answer, or *releases* it (the request failed: a retry
runs again). Later claims of the key get ``replay`` with the stored answer, ``mismatch``
when their request differs, or ``busy`` while the first is in progress.

A key lives ``ttl_s`` seconds from its claim; expired keys are deleted as claims come in
(at most once a minute per process). A claim left in progress longer than ``lease_s``
(its server died mid-request) is taken over by the next request with the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from driftloop.audit._protocol import AuditLog
from driftloop.audit._sql import SqlAuditLog, to_us

__all__ = ["Claim", "IdempotencyStore", "SqlIdempotencyStore", "idempotency_store"]

_PRUNE_EVERY_US = 60_000_000


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found: ``new`` (go ahead, then complete or release the key),
    ``replay`` (the stored ``status`` and ``body``), ``mismatch`` (the key was used for
    another request) or ``busy`` (the request with this key is still in progress)."""

    state: Literal["new", "replay", "mismatch", "busy"]
    status: int = 0
    body: str = ""


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where idempotency keys are kept (see the module's docstring)."""

    def claim(
        self, scope: str, key: str, digest: str, *, now: datetime, ttl_s: float, lease_s: float
    ) -> Claim: ...

    def complete(self, scope: str, key: str, status: int, body: str) -> None: ...

    def release(self, scope: str, key: str) -> None: ...


class SqlIdempotencyStore:
    """Keys in the ``audit_idempotency`` table of a SQL audit log."""

    def __init__(self, log: SqlAuditLog) -> None:
        self.log = log
        self._pruned_us = -(2**62)

    def claim(
        self, scope: str, key: str, digest: str, *, now: datetime, ttl_s: float, lease_s: float
    ) -> Claim:
        log, table = self.log, self.log._t("idempotency")
        now_us = to_us(now)
        where = "scope = ? AND key = ?"

        def work() -> Claim:
            with log._transaction() as cur:
                if now_us - self._pruned_us >= _PRUNE_EVERY_US:
                    cur.execute(log._sql(f"DELETE FROM {table} WHERE expires_us <= ?"), [now_us])
                    self._pruned_us = now_us
                for _ in range(2):  # a concurrent claim may insert between select and insert
                    cur.execute(
                        log._sql(
                            f"SELECT digest, status, body, created_us, expires_us FROM {table} "
                            f"WHERE {where}"
                        ),
                        [scope, key],
                    )
                    row = cur.fetchone()
                    if row is not None:
                        stored, status, body, created_us, expires_us = row
                        stale = status == 0 and created_us + lease_s * 1e6 <= now_us
                        if expires_us > now_us and not stale:
                            if stored != digest:
                                return Claim("mismatch")
                            return Claim("busy") if status == 0 else Claim("replay", status, body)
                        cur.execute(log._sql(f"DELETE FROM {table} WHERE {where}"), [scope, key])
                    cur.execute(
                        log._sql(
                            f"INSERT INTO {table} (scope, key, digest, status, body, created_us, "
                            "expires_us) VALUES (?, ?, ?, 0, NULL, ?, ?) "
                            "ON CONFLICT (scope, key) DO NOTHING"
                        ),
                        [scope, key, digest, now_us, now_us + round(ttl_s * 1e6)],
                    )
                    if cur.rowcount == 1:
                        return Claim("new")
                return Claim("busy")

        return log._retrying(work)

    def complete(self, scope: str, key: str, status: int, body: str) -> None:
        log = self.log

        def work() -> None:
            with log._transaction() as cur:
                cur.execute(
                    log._sql(
                        f"UPDATE {log._t('idempotency')} SET status = ?, body = ? "
                        "WHERE scope = ? AND key = ?"
                    ),
                    [status, body, scope, key],
                )

        log._retrying(work)

    def release(self, scope: str, key: str) -> None:
        log = self.log

        def work() -> None:
            with log._transaction() as cur:
                cur.execute(
                    log._sql(
                        f"DELETE FROM {log._t('idempotency')} "
                        "WHERE scope = ? AND key = ? AND status = 0"
                    ),
                    [scope, key],
                )

        log._retrying(work)


def idempotency_store(log: AuditLog | None) -> IdempotencyStore | None:
    """Where ``log`` keeps idempotency keys: its own tables for the SQLite and PostgreSQL
    logs, None for a log that cannot keep them."""
    return SqlIdempotencyStore(log) if isinstance(log, SqlAuditLog) else None
