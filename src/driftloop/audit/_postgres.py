"""The team audit log: tables in a PostgreSQL schema."""

from __future__ import annotations

import re
from pathlib import Path

from driftloop.audit._schema import upgrade
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.errors import BackendUnavailableError, InvalidParameterError
from driftloop.core.migrations import sqlalchemy_url

__all__ = ["PostgresAuditLog"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+psycopg://...``) as a libpq connection string."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


class PostgresAuditLog(SqlAuditLog):
    """Audit log in PostgreSQL (psycopg 3); tables live in ``schema`` (created if absent),
    created or upgraded at open (:mod:`driftloop.audit._schema`).

    Commits are durable with PostgreSQL's default ``synchronous_commit = on``.
    """

    _param = "%s"

    def __init__(
        self, url: str, *, schema: str = "driftloop", archive: str | Path | None = None
    ) -> None:
        if not _IDENTIFIER.match(schema):
            raise InvalidParameterError(
                f"Audit schema {schema!r} must be a lower-case SQL identifier "
                "(letters, digits, underscores)."
            )
        import psycopg

        try:
            conn = psycopg.connect(libpq_dsn(url), connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise BackendUnavailableError(
                f"Audit log database at {url} is unreachable: {exc}"
            ) from exc
        try:
            upgrade(sqlalchemy_url(url), schema=schema)  # creates the schema too
        except BaseException:
            conn.close()
            raise
        self.schema = schema
        self._prefix = f'"{schema}".'
        super().__init__(conn, archive)
