"""Choosing the audit log backend from ``settings.audit.url``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from driftloop.audit._postgres import PostgresAuditLog
from driftloop.audit._protocol import AuditLog
from driftloop.audit._sqlite import SqliteAuditLog
from driftloop.core.errors import ConfigError
from driftloop.core.urls import local_path, scheme_of

__all__ = ["BACKENDS", "open_audit_log"]

# Scheme -> class, explicit (STYLE.md: never classes from dotted strings).
BACKENDS: dict[str, type[SqliteAuditLog] | type[PostgresAuditLog]] = {
    "sqlite": SqliteAuditLog,
    "postgresql": PostgresAuditLog,
    "postgresql+psycopg": PostgresAuditLog,
}


def open_audit_log(url: str, *, root: Path = Path("."), archive: Path | None = None) -> AuditLog:
    """Open the audit log at ``url``; embedded paths are relative to ``root``.

    SQLite commits survive ``kill -9`` of the server (WAL, ``synchronous=normal``);
    ``sqlite:///.driftloop/audit.db?synchronous=full`` fsyncs each commit so they survive a
    power cut too;
    ``postgresql://.../db?schema=name`` picks the schema. Compacted Parquet goes to
    ``archive``, else the ``?archive=FOLDER`` of the URL (relative to ``root``), else
    ``audit-archive/`` beside a SQLite file (a PostgreSQL log has none by default).

    >>> import tempfile
    >>> log = open_audit_log("sqlite:///audit.db", root=Path(tempfile.mkdtemp()))
    >>> type(log).__name__
    'SqliteAuditLog'
    >>> log.close()
    """
    scheme = scheme_of(url)
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(
            f"audit.url: scheme '{scheme}' is not supported. Known: {', '.join(BACKENDS)}."
        )
    base, _, query = url.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    named = options.pop("archive", None)
    if archive is None and named is not None:
        archive = local_path(named, root)
    if backend is SqliteAuditLog:
        path = local_path(base, root)
        sync = options.pop("synchronous", "normal").lower()
        _no_more(options, url)
        if sync not in ("full", "normal"):
            raise ConfigError(f"audit.url: synchronous must be full or normal, got {sync!r}.")
        folder = archive if archive is not None else path.parent / "audit-archive"
        return SqliteAuditLog(
            path, archive=folder, synchronous="full" if sync == "full" else "normal"
        )
    schema = options.pop("schema", "driftloop")
    _no_more(options, url)
    return PostgresAuditLog(urlsplit(base).geturl(), schema=schema, archive=archive)


def _no_more(options: dict[str, str], url: str) -> None:
    if options:
        raise ConfigError(f"audit.url {url!r}: unknown option(s) {', '.join(sorted(options))}.")
