"""Tenants and their API keys, kept in the registry's database.

A key is shown once, when it is made: the store keeps only the SHA-256 of its secret, so
neither a copy of the database nor its backups give a key away. A key belongs to one
tenant, holds scopes (``predict``, ``feedback``, ``read``, ``admin``), may expire, may
carry a rate limit (requests per second and a burst), and is revoked, never deleted.
Every creation, revocation and quota change is kept in ``driftloop_key_events`` with who
made it.

>>> import tempfile
>>> from datetime import UTC, datetime, timedelta
>>> store = KeyStore.at(f"sqlite:///{tempfile.mkdtemp()}/keys.db")
>>> key, secret = store.create("acme", ["predict"], name="scoring", who="ana")
>>> store.verify(secret).id == key.id, store.verify(secret + "x")
(True, None)
>>> store.revoke(key.id, who="ana").revoked_at is not None
True
>>> store.verify(secret) is None
True
>>> store.close()
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update
from sqlalchemy.dialects import postgresql, sqlite

from driftloop.core.errors import InvalidParameterError, NotFoundError
from driftloop.registry._db import make_engine, upgrade_schema, writing
from driftloop.registry._rows import check_name, utc
from driftloop.registry._schema import api_keys, key_events, models, tenants

__all__ = ["SCOPES", "ApiKey", "KeySnapshot", "KeyStore", "secret_digest"]

SCOPES = ("predict", "feedback", "read", "admin")
_PREFIX = "dlk_"  # lets a secret scanner recognise a leaked key


def secret_digest(secret: str) -> str:
    """The SHA-256 (hex) a key's secret is stored and looked up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One API key (never its secret): ``rate_per_s`` None is no per-key rate limit."""

    id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rate_per_s: float | None = None
    burst: int | None = None

    def usable(self, now: datetime) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class KeySnapshot:
    """What a server checks requests against, read in one go: usable keys by the SHA-256
    of their secret, each tenant's daily request quota, each registered model's tenant,
    each tenant's audit storage quota (predictions the audit store may hold)."""

    keys: dict[str, ApiKey]
    quotas: dict[str, int]
    model_tenants: dict[str, str]
    audit_quotas: dict[str, int] = field(default_factory=dict)


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=utc(row.created_at),
        created_by=row.created_by,
        expires_at=utc(row.expires_at) if row.expires_at is not None else None,
        revoked_at=utc(row.revoked_at) if row.revoked_at is not None else None,
        rate_per_s=row.rate_per_s,
        burst=row.burst,
    )


class KeyStore:
    """Tenants and API keys in the registry's database (SQLite/PostgreSQL), which must be
    at the registry's newest schema (``Registry.keys`` and :meth:`at` see to it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def at(cls, url: str, *, root: str | Path = ".") -> KeyStore:
        """A store of its own at ``url``, migrated."""
        engine = make_engine(url, root=root)
        upgrade_schema(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- keys -------------------------------------------------------------------------
    def create(
        self,
        tenant: str,
        scopes: list[str] | tuple[str, ...],
        *,
        who: str,
        name: str = "",
        expires_at: datetime | None = None,
        rate_per_s: float | None = None,
        burst: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key of ``tenant`` (made if new) and its secret, which nothing keeps: hand
        it to its user now."""
        check_name("Tenant", tenant)
        scopes = tuple(dict.fromkeys(scopes))
        wrong = [s for s in scopes if s not in SCOPES]
        if not scopes or wrong:
            raise InvalidParameterError(
                f"Key scopes must be some of {', '.join(SCOPES)}; "
                f"got {', '.join(scopes) or 'none'}."
            )
        if rate_per_s is not None and not rate_per_s > 0:
            raise InvalidParameterError(f"A key's rate must be above 0/s; got {rate_per_s}.")
        if burst is not None and burst < 1:
            raise InvalidParameterError(f"A key's burst must be at least 1; got {burst}.")
        if len(name) > 200 or not who or len(who) > 200:
            raise InvalidParameterError("A key's name and who makes it: at most 200 characters.")
        now = datetime.now(UTC)
        if rate_per_s is not None and burst is None:
            burst = max(1, int(rate_per_s + 0.999999))
        key = ApiKey(
            id="k" + secrets.token_hex(8),
            tenant=tenant,
            name=name,
            scopes=scopes,
            created_at=now,
            created_by=who,
            expires_at=utc(expires_at) if expires_at is not None else None,
            rate_per_s=rate_per_s,
            burst=burst,
        )
        secret = f"{_PREFIX}{secrets.token_urlsafe(32)}"
        with writing(self.engine) as conn:
            self._ensure_tenant(conn, tenant, now)
            conn.execute(
                api_keys.insert().values(
                    **{**key.__dict__, "scopes": list(scopes)}, secret_sha256=secret_digest(secret)
                )
            )
            _event(conn, "create-key", tenant, key.id, who, {"scopes": list(scopes), "name": name})
        return key, secret

    def get(self, key_id: str) -> ApiKey:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFoundError(f"No API key with id '{key_id}'.")
        return _key(row)

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant`` when given), revoked ones included, oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(query)]

    def revoke(self, key_id: str, *, who: str) -> ApiKey:
        """Revoke a key for good (a second revoke keeps the first time)."""
        key = self.get(key_id)
        if key.revoked_at is not None:
            return key
        now = datetime.now(UTC)
        with writing(self.engine) as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            _event(conn, "revoke-key", key.tenant, key_id, who, {})
        return self.get(key_id)

    def verify(self, secret: str, now: datetime | None = None) -> ApiKey | None:
        """The usable key whose secret this is, else None (one query: for tools; a server
        checks against :meth:`snapshot`, held in memory)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_keys).where(api_keys.c.secret_sha256 == secret_digest(secret))
            ).first()
        if row is None:
            return None
        key = _key(row)
        return key if key.usable(now or datetime.now(UTC)) else None

    def snapshot(self) -> KeySnapshot:
        """Every unrevoked key, every quota and every model's tenant, in one transaction."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).where(api_keys.c.revoked_at.is_(None))).all()
            quotas = conn.execute(
                select(tenants.c.name, tenants.c.requests_per_day, tenants.c.max_audit_rows)
            ).all()
            owned = conn.execute(select(models.c.name, models.c.tenant)).all()
        return KeySnapshot(
            keys={row.secret_sha256: _key(row) for row in rows},
            quotas={q.name: int(q.requests_per_day) for q in quotas if q.requests_per_day},
            model_tenants={m.name: m.tenant for m in owned},
            audit_quotas={q.name: int(q.max_audit_rows) for q in quotas if q.max_audit_rows},
        )

    # -- tenants ----------------------------------------------------------------------
    def set_quota(
        self,
        tenant: str,
        requests_per_day: int | None,
        *,
        who: str,
        max_models: int | None = None,
        max_audit_rows: int | None = None,
    ) -> None:
        """A tenant's quotas: requests per UTC day over every key, how many models it
        may register, and how many of its predictions the audit store may hold (None: no
        quota)."""
        check_name("Tenant", tenant)
        for what, value in (
            ("requests per day", requests_per_day),
            ("models", max_models),
            ("audit rows", max_audit_rows),
        ):
            if value is not None and value < 1:
                raise InvalidParameterError(f"A tenant's {what} must be at least 1; got {value}.")
        with writing(self.engine) as conn:
            self._ensure_tenant(conn, tenant, datetime.now(UTC))
            conn.execute(
                update(tenants)
                .where(tenants.c.name == tenant)
                .values(
                    requests_per_day=requests_per_day,
                    max_models=max_models,
                    max_audit_rows=max_audit_rows,
                )
            )
            quotas = {
                "requests_per_day": requests_per_day,
                "max_models": max_models,
                "max_audit_rows": max_audit_rows,
            }
            _event(conn, "set-quota", tenant, None, who, quotas)

    def events(self, tenant: str | None = None) -> builtins.list[dict[str, Any]]:
        """Who created and revoked which key and changed which quota, oldest first."""
        query = select(key_events).order_by(key_events.c.id)
        if tenant is not None:
            query = query.where(key_events.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [{**row._asdict(), "at": utc(row.at)} for row in conn.execute(query)]

    @staticmethod
    def _ensure_tenant(conn: Connection, tenant: str, now: datetime) -> None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(tenants)
            .values(name=tenant, created_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )


def _event(
    conn: Connection, action: str, tenant: str, key_id: str | None, who: str, detail: Any
) -> None:
    conn.execute(
        key_events.insert().values(
            at=datetime.now(UTC),
            action=action,
            tenant=tenant,
            key_id=key_id,
            who=who,
            detail=detail,
        )
    )
