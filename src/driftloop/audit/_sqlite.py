"""The embedded audit log: one SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

from driftloop.audit._route_hours import add_rows
from driftloop.audit._schema import upgrade
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.errors import InvalidParameterError

__all__ = ["SqliteAuditLog"]

_BUSY_TIMEOUT_MS = 30_000


class SqliteAuditLog(SqlAuditLog):
    """Audit log in a SQLite file (WAL), safe for several server processes at once.

    Opening creates or upgrades the tables (:mod:`driftloop.audit._schema`).

    ``synchronous="normal"`` (the default) hands every commit to the operating system
    before ``write`` returns (WAL: fsync only at checkpoints), so a prediction whose write
    returned survives ``kill -9`` of the server, but not a power cut or a kernel crash;
    ``"full"`` fsyncs every commit and survives those too, at a cost per commit that
    depends on the disk.

    >>> import tempfile, pathlib
    >>> from datetime import datetime
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> log = SqliteAuditLog(folder / "audit.db")
    >>> log.window(datetime(2026, 1, 1), datetime(2026, 1, 2)).shape[0]
    0
    >>> log.close()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        archive: str | Path | None = None,
        synchronous: Literal["full", "normal"] = "normal",
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise InvalidParameterError(
                f"synchronous must be 'full' or 'normal', got {synchronous!r}."
            )
        self.path = Path(path)
        self.synchronous = synchronous
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(  # timeout: SQLite's busy timeout, for readers
            self.path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        upgrade(f"sqlite:///{self.path.resolve()}")
        super().__init__(conn, archive)

    def _inserted(self, cur: Any, rows: list[tuple[Any, ...]], took: int) -> None:
        add_rows(cur, rows, took)  # the hourly rollups (a0006: the writer keeps them)

    def _begin_write(self, cur: Any) -> None:
        """Take the write lock now (BEGIN IMMEDIATE), retrying every 50 us to 1 ms while
        another process holds it. SQLite's own busy handler sleeps 1, 2, 5, 10... ms
        between tries: with several server workers sharing the file, each waiting commit
        lost milliseconds to a lock held for well under one."""
        cur.execute("PRAGMA busy_timeout=0")
        try:
            deadline, pause = time.monotonic() + _BUSY_TIMEOUT_MS / 1000, 50e-6
            while True:
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(pause)
                pause = min(2 * pause, 1e-3)
        finally:
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
