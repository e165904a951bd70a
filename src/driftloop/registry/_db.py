"""Engines and schema migrations for the registry database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from driftloop.core.errors import ConfigError
from driftloop.core.migrations import Branch
from driftloop.core.migrations import upgrade_schema as migrate
from driftloop.registry._schema import VERSION_TABLE, metadata

__all__ = ["BRANCH", "make_engine", "upgrade_schema", "writing"]

MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE = "driftloop_write"


def make_engine(url: str, *, root: str | Path = ".") -> Engine:
    """An engine for ``url``; a relative SQLite path is relative to ``root``.

    SQLite runs in WAL mode; write transactions (:func:`writing`) start ``BEGIN
    IMMEDIATE`` so that concurrent writers queue (up to 60 s) instead of failing or
    interleaving, while reads stay deferred and never wait for a writer.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path(root) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path.resolve()}"
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})
        _serialise_sqlite_writers(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"Registry URL {url.split('@')[-1]!r} needs the PostgreSQL driver: "
            "pip install 'driftloop[postgres]'."
        ) from exc


def _serialise_sqlite_writers(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event decide
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writing(engine: Engine) -> Any:
    """A write transaction: ``with writing(engine) as conn: ...`` (queued on SQLite)."""
    return engine.execution_options(**{_WRITE: True}).begin()


BRANCH = Branch(
    part="registry",
    scripts=MIGRATIONS,
    version_table=VERSION_TABLE,
    lock_key=0x64726C72,  # "drlr": serialises concurrent migrations on PostgreSQL
    first="r0001",
    metadata=metadata,
)


def upgrade_schema(engine: Engine) -> None:
    """Bring the registry tables to the newest schema (no-op when they are)."""
    migrate(engine, BRANCH)
