"""Single leader per model: a lease row (``driftloop_loop_leases``) that one controller
holds until it expires, taken with a conditional write so that two controllers, in two
processes, on SQLite or PostgreSQL, never both hold it.

Taking is one ``UPDATE ... WHERE holder = me OR expires_at <= now`` and, when no row
exists yet, one ``INSERT ... ON CONFLICT DO NOTHING``: PostgreSQL re-checks the ``WHERE``
of a row another transaction just changed, and SQLite's writers queue, so exactly one
caller sees its row counted. Every transition of a rollout renews the lease inside its
own transaction (:meth:`Lease.take` on its connection): a controller that lost the lease
commits nothing.

>>> import tempfile
>>> from datetime import UTC, datetime, timedelta
>>> from driftloop.registry import Registry
>>> folder = tempfile.mkdtemp()
>>> registry = Registry.from_url(f"sqlite:///{folder}/r.db", f"{folder}/a")
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> a = Lease(registry, "a", timedelta(seconds=30), clock=lambda: now)
>>> b = Lease(registry, "b", timedelta(seconds=30), clock=lambda: now)
>>> a.acquire("fraud"), b.acquire("fraud")
(True, False)
>>> now += timedelta(seconds=31)
>>> b.acquire("fraud"), a.acquire("fraud")
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from driftloop.core.errors import ConflictError, InvalidParameterError
from driftloop.registry import Registry, loop_leases

__all__ = ["Lease", "LeaseLostError"]


class LeaseLostError(ConflictError):
    """Another controller holds the model's lease: this one must not act on it."""


class Lease:
    """The leases ``holder`` takes, each valid ``ttl`` after it was taken or renewed."""

    DEFAULT_TTL = timedelta(seconds=60)

    def __init__(
        self,
        registry: Registry,
        holder: str,
        ttl: timedelta,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not holder or len(holder) > 200:
            raise InvalidParameterError(f"Lease holder must have 1-200 characters; got {holder!r}.")
        if ttl <= timedelta(0):
            raise InvalidParameterError(f"Lease ttl must be positive; got {ttl}.")
        self.registry = registry
        self.holder = holder
        self.ttl = ttl
        self.clock = clock

    def take(self, conn: Connection, model: str) -> bool:
        """Take or renew the lease inside the write transaction ``conn``; True when held."""
        now = self.clock().astimezone(UTC)
        table = loop_leases
        renewed = conn.execute(
            update(table)
            .where(
                table.c.model == model,
                or_(table.c.holder == self.holder, table.c.expires_at <= now),
            )
            .values(holder=self.holder, expires_at=now + self.ttl)
        )
        if renewed.rowcount == 1:
            return True
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(table)
            .values(model=model, holder=self.holder, expires_at=now + self.ttl)
            .on_conflict_do_nothing(index_elements=["model"])
        )  # its rowcount is not reliable with RETURNING on every driver: look instead
        holder = conn.execute(select(table.c.holder).where(table.c.model == model)).scalar()
        return holder == self.holder

    def hold(self, conn: Connection, model: str) -> None:
        """:meth:`take`, or raise :class:`LeaseLostError` (rolling the transaction back)."""
        if not self.take(conn, model):
            raise LeaseLostError(
                f"Controller '{self.holder}' does not hold the lease of model '{model}' "
                f"(held by {self.current(model, conn)!r}); it must not act on it."
            )

    def acquire(self, model: str) -> bool:
        """Take or renew the lease of ``model`` in a transaction of its own."""
        with self.registry.release() as release:
            return self.take(release.conn, model)

    def give_up(self, model: str) -> None:
        """Let the lease go (another controller may take it at once)."""
        with self.registry.release() as release:
            release.conn.execute(
                delete(loop_leases).where(
                    loop_leases.c.model == model, loop_leases.c.holder == self.holder
                )
            )

    def current(self, model: str, conn: Connection | None = None) -> str | None:
        """Who holds the lease of ``model`` now (None: nobody, or it expired)."""
        query = select(loop_leases.c.holder, loop_leases.c.expires_at).where(
            loop_leases.c.model == model
        )
        if conn is None:
            with self.registry.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            return None
        expires = row.expires_at
        expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
        return str(row.holder) if expires > self.clock() else None
