"""Alembic environment: runs on the connection handed over by the registry."""

from __future__ import annotations

from alembic import context

from driftloop.registry._schema import VERSION_TABLE, metadata


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file; importing it elsewhere (doctest collection) does nothing.
if getattr(context, "config", None) is not None:
    run_migrations()
