"""The team audit log: tables in a PostgreSQL schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from driftloop.audit._schema import upgrade
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.errors import BackendUnavailableError, InvalidParameterError
from driftloop.core.migrations import sqlalchemy_url

__all__ = ["PostgresAuditLog"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LABELS_LOCK = 0x64726C6C  # "drll": label writers of every schema, one at a time
_ENTITY = "name, value, ts_us, prediction_id"
_PASSWORD = re.compile(r"(://[^/:@]*:)[^/@]*@")


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+psycopg://...``) as a libpq connection string."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def redacted(url: str) -> str:
    """``url`` without its password, for messages.

    >>> redacted("postgresql+psycopg://app:s3cret@db:5432/audit")
    'postgresql+psycopg://app:***@db:5432/audit'
    """
    return _PASSWORD.sub(r"\1***@", url)


class PostgresAuditLog(SqlAuditLog):
    """Audit log in PostgreSQL (psycopg 3); tables live in ``schema`` (created if absent),
    created or upgraded at open (:mod:`driftloop.audit._schema`).

    Commits are durable with PostgreSQL's default ``synchronous_commit = on``.

    Every call is bounded: connecting gives up after ``connect_timeout_s``, a statement
    after ``statement_timeout_s`` (PostgreSQL cancels it), and TCP keepalives notice a
    peer that vanished. A call that finds the server gone raises
    ``BackendUnavailableError`` and drops the connection; the next one connects again, so
    the log heals by itself once PostgreSQL is back (reads retry once at once).
    """

    _param = "%s"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "driftloop",
        archive: str | Path | None = None,
        connect_timeout_s: float = 3.0,
        statement_timeout_s: float = 5.0,
    ) -> None:
        if not _IDENTIFIER.match(schema):
            raise InvalidParameterError(
                f"Audit schema {schema!r} must be a lower-case SQL identifier "
                "(letters, digits, underscores)."
            )
        if connect_timeout_s <= 0 or statement_timeout_s <= 0:
            raise InvalidParameterError(
                "connect_timeout_s and statement_timeout_s must be positive, got "
                f"{connect_timeout_s} and {statement_timeout_s}."
            )
        self.url = redacted(url)
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self._dsn = libpq_dsn(url)
        conn = self._connect()
        try:
            upgrade(sqlalchemy_url(url), schema=schema)  # creates the schema too
        except BaseException:
            conn.close()
            raise
        self.schema = schema
        self._prefix = f'"{schema}".'
        super().__init__(conn, archive)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self._dsn,
                connect_timeout=max(1, round(self.connect_timeout_s)),  # libpq: whole seconds
                options=f"-c statement_timeout={round(self.statement_timeout_s * 1000)}",
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise BackendUnavailableError(
                f"Audit log database at {self.url} is unreachable: {exc}"
            ) from exc

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError | None:
        import psycopg

        if isinstance(exc, psycopg.errors.QueryCanceled):
            return BackendUnavailableError(
                f"Audit log database at {self.url} did not answer within "
                f"{self.statement_timeout_s:g} s (statement_timeout): {exc}"
            )
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return BackendUnavailableError(f"Audit log database at {self.url} failed: {exc}")
        return None

    def _move_staged(self, cur: Any, table: str) -> int:
        """One statement deletes the staged rows its snapshot sees and inserts them: a
        concurrent merge waits on the rows this one deleted and then skips them, and rows
        another writer stages meanwhile stay for the next merge."""
        cur.execute(
            f"WITH moved AS (DELETE FROM {table} RETURNING {_ENTITY}) "
            f"INSERT INTO {self._t('entities')} ({_ENTITY}) "
            f"SELECT {_ENTITY} FROM moved ORDER BY name, value, ts_us"
        )
        return int(cur.rowcount)

    def _lock_labels(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LABELS_LOCK])

    def _broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)
