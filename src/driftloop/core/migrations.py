"""Schema migrations: every table a part owns is created and upgraded by Alembic.

Each part that owns tables (registry, features, audit, monitoring) ships one Alembic
script folder, its *branch*, and keeps its applied revision in a version table of its
own (``alembic_version_audit``, ...). Parts that share a database (the audit log and
monitoring; the registry and the feature definitions) therefore upgrade independently.

:func:`upgrade_schema` brings one branch to its newest revision:

* it is a read and nothing more when the database is already there;
* otherwise it takes a lock that serialises every process migrating the same database
  (PostgreSQL: a transaction-scoped advisory lock; SQLite: the write lock, ``BEGIN
  IMMEDIATE``), looks again under the lock, and runs the missing revisions in that one
  transaction, so a crash leaves the old schema or the new one;
* a database made before the part had migrations (its tables present, no version table)
  is *stamped* with the branch's first revision, which is that schema exactly, and then
  upgraded: nothing is recreated and no row is lost.

Migration scripts read the branch's ``options`` (a PostgreSQL schema, a table prefix)
with :func:`option`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from driftloop.core.errors import BackendUnavailableError, ConflictError

__all__ = ["Branch", "current_revision", "option", "run_env", "sqlalchemy_url", "upgrade_schema"]

_ATTRIBUTE = "driftloop.branch"
_LOCKED = "driftloop_migrating"  # execution option: this transaction takes the write lock


@dataclass(frozen=True)
class Branch:
    """One part's migrations.

    ``legacy_tables`` are tables the first revision creates: found without the version
    table, they mark a database made before migrations, which is stamped ``first``.
    ``schema`` (PostgreSQL) holds the tables and the version table; ``options`` are
    handed to the scripts (:func:`option`). ``lock_key`` names the advisory lock.
    """

    part: str
    scripts: Path
    version_table: str
    lock_key: int
    first: str
    legacy_tables: tuple[str, ...] = ()
    schema: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    metadata: sa.MetaData | None = None  # the tables the code uses, for autogenerate


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` as SQLAlchemy's psycopg 3 dialect; other URLs unchanged.

    >>> sqlalchemy_url("postgresql://db.internal/test")
    'postgresql+psycopg://db.internal/test'
    """
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@cache
def _head(scripts: Path) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(scripts)).get_current_head()
    assert head is not None, f"{scripts} has no migrations"
    return head


@cache
def _known(scripts: Path) -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(s.revision for s in ScriptDirectory(str(scripts)).walk_revisions())


def current_revision(conn: Connection, branch: Branch) -> str | None:
    """The revision the database is at for ``branch`` (None: no version table yet)."""
    from alembic.runtime.migration import MigrationContext

    opts = {"version_table": branch.version_table, "version_table_schema": branch.schema}
    return MigrationContext.configure(conn, opts=opts).get_current_revision()


def upgrade_schema(db: str | Engine, branch: Branch, *, revision: str = "head") -> None:
    """Bring ``branch``'s tables in the database ``db`` (a URL or an engine) to
    ``revision`` (default: the newest), serialised against other processes.

    The work runs on a short-lived engine of its own (no pool), except for an in-memory
    SQLite database, which only the given engine can reach.
    """
    engine = db if isinstance(db, Engine) else None
    url = sa.make_url(sqlalchemy_url(db)) if isinstance(db, str) else db.url
    sqlite = url.get_backend_name() == "sqlite"
    memory = sqlite and url.database in (None, "", ":memory:")
    own = None
    if engine is None or (sqlite and not memory):
        own = sa.create_engine(url, poolclass=NullPool, **_connect_args(url))
        if sqlite:
            _write_lock_on_begin(own)
    try:
        _upgrade(own or engine, branch, revision)  # type: ignore[arg-type]
    except OperationalError as exc:
        raise BackendUnavailableError(
            f"The {branch.part} database {url.render_as_string(hide_password=True)} cannot "
            f"be migrated: {exc.orig}"
        ) from exc
    finally:
        if own is not None:
            own.dispose()


def _connect_args(url: sa.URL) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if url.get_backend_name() == "postgresql":
        return {"connect_args": {"connect_timeout": 5}}
    return {}


def _write_lock_on_begin(engine: Engine) -> None:
    """A migrating transaction takes SQLite's write lock up front (reads do not)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions begin in "begin" below

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        locked = conn.get_execution_options().get(_LOCKED, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if locked else "BEGIN")


def _upgrade(engine: Engine, branch: Branch, revision: str) -> None:
    target = _head(branch.scripts) if revision == "head" else revision
    with engine.connect() as conn:  # the usual case: up to date, a read and no lock
        if _checked(current_revision(conn, branch), branch) == target:
            return
    with engine.execution_options(**{_LOCKED: True}).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": branch.lock_key})
            if branch.schema is not None:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{branch.schema}"'))
        current = _checked(current_revision(conn, branch), branch)
        if current == target:
            return  # another process migrated while this one waited for the lock
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(branch.scripts))
        config.attributes["connection"] = conn
        config.attributes[_ATTRIBUTE] = branch
        if current is None and _made_before_migrations(conn, branch):
            command.stamp(config, branch.first)
        command.upgrade(config, revision)


def _checked(current: str | None, branch: Branch) -> str | None:
    if current is not None and current not in _known(branch.scripts):
        raise ConflictError(
            f"The {branch.part} tables are at schema revision '{current}', which this "
            f"driftloop does not know (its newest is '{_head(branch.scripts)}'): the database "
            "was upgraded by a newer driftloop. Upgrade driftloop to use it."
        )
    return current


def _made_before_migrations(conn: Connection, branch: Branch) -> bool:
    inspector = sa.inspect(conn)
    found = [t for t in branch.legacy_tables if inspector.has_table(t, schema=branch.schema)]
    if found and len(found) < len(branch.legacy_tables):
        missing = sorted(set(branch.legacy_tables) - set(found))
        raise ConflictError(
            f"The {branch.part} database has table(s) {', '.join(found)} but not "
            f"{', '.join(missing)}, and no version table '{branch.version_table}': it was not "
            "made by driftloop, or only in part. Repair or remove it."
        )
    return bool(found)


def option(name: str) -> str | None:
    """A branch option, read from inside a migration script (None when not set)."""
    from alembic import context

    branch: Branch = context.config.attributes[_ATTRIBUTE]
    return branch.options.get(name)


def run_env() -> None:
    """The body of every branch's ``env.py``: run on the connection handed over."""
    from alembic import context

    if getattr(context, "config", None) is None:
        return  # imported outside Alembic (doctest collection): nothing to do
    branch: Branch = context.config.attributes[_ATTRIBUTE]
    context.configure(
        connection=context.config.attributes["connection"],
        target_metadata=branch.metadata,
        version_table=branch.version_table,
        version_table_schema=branch.schema,
    )
    with context.begin_transaction():
        context.run_migrations()
