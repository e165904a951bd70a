"""Per-tenant request counts shared by every server process, in the registry's database.

A server does not write a row per request: it claims a tenant's requests in blocks
(:meth:`UsageStore.claim`) and spends them in memory. Claims are serialised by the
database (SQLite's write lock, a row lock on PostgreSQL) and never grant past the limit,
so any number of workers and servers together grant at most a tenant's quota; requests
claimed by a process and not spent when the day ends (or the process stops) are lost,
never granted twice.

>>> import tempfile
>>> from datetime import date
>>> from driftloop.registry._db import make_engine, upgrade_schema
>>> engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/usage.db")
>>> upgrade_schema(engine)
>>> usage = UsageStore(engine)
>>> day = date(2026, 3, 1)
>>> [usage.claim("acme", day, 4, limit=10) for _ in range(3)], usage.used("acme", day)
([4, 4, 2], 10)
>>> engine.dispose()
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from driftloop.registry._db import writing
from driftloop.registry._schema import usage

__all__ = ["UsageStore"]


class UsageStore:
    """Requests granted per tenant and UTC day (``driftloop_usage``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, tenant: str, day: date, wanted: int, *, limit: int) -> int:
        """Grant up to ``wanted`` more of ``tenant``'s requests on ``day``, never past
        ``limit`` in total; return how many were granted (0: the quota is used up)."""
        key = (usage.c.tenant == tenant, usage.c.day == day.isoformat())
        with writing(self.engine) as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(
                insert(usage)
                .values(tenant=tenant, day=day.isoformat(), requests=0)
                .on_conflict_do_nothing(index_elements=["tenant", "day"])
            )
            used = conn.execute(select(usage.c.requests).where(*key).with_for_update()).scalar()
            granted = max(0, min(wanted, limit - int(used or 0)))
            if granted:
                conn.execute(update(usage).where(*key).values(requests=usage.c.requests + granted))
        return granted

    def used(self, tenant: str, day: date) -> int:
        """How many of ``tenant``'s requests were granted on ``day``, by every process."""
        query = select(usage.c.requests).where(
            usage.c.tenant == tenant, usage.c.day == day.isoformat()
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)
