from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.audit import SqliteAuditLog, open_audit_log
from driftloop.core.errors import ConfigError


def test_sqlite_url_opens_a_wal_file_relative_to_the_project(tmp_path: Path) -> None:
    log = open_audit_log("sqlite:///.driftloop/audit.db?synchronous=normal", root=tmp_path)
    assert isinstance(log, SqliteAuditLog)
    assert log.path == tmp_path / ".driftloop" / "audit.db"
    log.close()
    assert (tmp_path / ".driftloop" / "audit.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "scheme 'mysql' is not supported"),
        ("sqlite:///a.db?synchronous=off", "synchronous must be full or normal"),
        ("sqlite:///a.db?fsync=1", "unknown option"),
    ],
)
def test_bad_audit_urls_are_refused_with_the_reason(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_audit_log(url, root=tmp_path)


@pytest.mark.parametrize(
    ("query", "level"), [("", 1), ("?synchronous=normal", 1), ("?synchronous=full", 2)]
)
def test_sqlite_commits_reach_the_os_by_default_and_fsync_when_asked(
    tmp_path: Path, query: str, level: int
) -> None:
    """kill -9 safety needs NORMAL (WAL); power-cut safety is `?synchronous=full` (FULL=2)."""
    log = open_audit_log(f"sqlite:///audit.db{query}", root=tmp_path)
    assert isinstance(log, SqliteAuditLog)
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == level
    assert log._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    log.close()
