"""The writer's spool: an audit store that is down or hung loses no acknowledged record,
stores none twice, and is caught up with by itself once it answers again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftloop.audit import AuditRecord, GroupCommitWriter, SqliteAuditLog
from driftloop.audit._spool import AuditSpool
from driftloop.audit._sql import ENTITY_PARTS
from driftloop.core.errors import BackendUnavailableError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE_S = 30.0  # only ever reached when the behaviour under test is broken
FAST = {"retry_initial_s": 0.01, "retry_max_s": 0.05}


def record(i: int) -> AuditRecord:
    return AuditRecord(
        prediction_id=f"p{i:04d}",
        ts=T0 + timedelta(seconds=i),
        model="fraud",
        version="1",
        route="champion",
        score=i / 100,
        decision="approve",
        latency_ms=1.5,
        features={"amount": 10.0 * i},
        entity_keys={"card_id": f"c{i % 3}"},
        feature_ts={},
    )


class FlakyLog(SqliteAuditLog):
    """A SQLite log whose writes fail while ``down`` and wait inside the transaction (the
    log's lock held, as a driver stuck on the network would) while ``hang`` is unset."""

    down = False
    refuse = False  # the store answers but rejects the data
    hang: threading.Event | None = None

    def _begin_write(self, cur: Any) -> None:
        if self.down:
            raise BackendUnavailableError("The audit store is down (test).")
        if self.refuse:
            raise ValueError("The audit store rejects this row (test).")
        if self.hang is not None:
            assert self.hang.wait(DEADLINE_S)
        super()._begin_write(cur)


def write_all(writer: GroupCommitWriter, ids: range) -> None:
    async def main() -> None:
        await asyncio.gather(*(writer.awrite([record(i)]) for i in ids))

    asyncio.run(main())


def copies(log: SqliteAuditLog) -> dict[str, tuple[int, int]]:
    """Prediction id -> (rows in predictions, entity rows merged or staged)."""
    with log._transaction(write=False) as cur:
        cur.execute("SELECT prediction_id, COUNT(*) FROM audit_predictions GROUP BY 1")
        rows = dict(cur.fetchall())
        tables = ["audit_entities"] + [f"audit_entities_recent_{p}" for p in range(ENTITY_PARTS)]
        union = " UNION ALL ".join(f"SELECT prediction_id FROM {t}" for t in tables)
        cur.execute(f"SELECT prediction_id, COUNT(*) FROM ({union}) GROUP BY 1")
        entities = dict(cur.fetchall())
    return {pid: (n, entities.get(pid, 0)) for pid, n in rows.items()}


def spool_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_records_written_while_the_store_is_down_reach_it_once_it_is_back(
    tmp_path: Path,
) -> None:
    log = FlakyLog(tmp_path / "audit.db")
    log.down = True
    writer = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)

    write_all(writer, range(40))  # every caller answered, none with an error

    assert writer.degraded
    assert writer.spooled == 40
    assert copies(log) == {}
    log.down = False
    assert writer.wait_replayed(DEADLINE_S)
    assert copies(log) == {f"p{i:04d}": (1, 1) for i in range(40)}
    assert (writer.spooled, writer.replayed, writer.degraded) == (0, 40, False)

    write_all(writer, range(40, 45))  # healthy again: straight to the store
    assert writer.spooled == 0
    assert len(copies(log)) == 45
    writer.close()
    assert spool_files(tmp_path / "spool") == []  # an empty spool leaves no file
    log.close()


def test_a_hung_commit_is_answered_from_the_spool_and_stored_once_when_it_ends(
    tmp_path: Path,
) -> None:
    log = FlakyLog(tmp_path / "audit.db")
    log.hang = threading.Event()
    writer = GroupCommitWriter(log, spool=tmp_path / "spool", commit_timeout_s=0.05, **FAST)

    write_all(writer, range(20))  # answered after the deadline, from the spool

    assert writer.degraded
    assert writer.spooled == 20
    log.hang.set()  # the stuck transaction commits late, then the replay runs
    assert writer.wait_replayed(DEADLINE_S)
    assert copies(log) == {f"p{i:04d}": (1, 1) for i in range(20)}
    assert not writer.degraded
    writer.close()
    log.close()


def test_close_keeps_unstored_rows_in_the_spool_for_the_next_writer(tmp_path: Path) -> None:
    log = FlakyLog(tmp_path / "audit.db")
    log.down = True
    first = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)
    write_all(first, range(10))
    first.close()
    assert any(name.endswith(".db") for name in spool_files(tmp_path / "spool"))

    log.down = False
    second = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)
    assert second.wait_replayed(DEADLINE_S)
    assert copies(log) == {f"p{i:04d}": (1, 1) for i in range(10)}
    second.close()
    assert spool_files(tmp_path / "spool") == []
    log.close()


_DYING_WRITER = """
import asyncio, os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from unit.audit.test_writer_spool import FlakyLog, write_all
from driftloop.audit import GroupCommitWriter

log = FlakyLog(Path({db!r}))
log.down = True
writer = GroupCommitWriter(log, spool=Path({spool!r}), retry_initial_s=60, retry_max_s=60)
write_all(writer, range(25))
print(writer.spooled, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_spool_left_by_a_killed_process_is_replayed_by_the_next_writer(
    tmp_path: Path,
) -> None:
    script = _DYING_WRITER.format(
        tests=str(Path(__file__).parents[2]),
        db=str(tmp_path / "audit.db"),
        spool=str(tmp_path / "spool"),
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    assert done.stdout.split() == ["25"]  # acknowledged, then killed before any replay

    log = SqliteAuditLog(tmp_path / "audit.db")
    assert copies(log) == {}
    writer = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)
    assert writer.wait_replayed(DEADLINE_S)
    assert copies(log) == {f"p{i:04d}": (1, 1) for i in range(25)}
    assert writer.replayed == 25
    writer.close()
    assert spool_files(tmp_path / "spool") == []
    log.close()


def test_a_live_writers_spool_is_not_taken_by_another_writer_on_the_folder(
    tmp_path: Path,
) -> None:
    log = FlakyLog(tmp_path / "audit.db")
    log.down = True
    first = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)
    write_all(first, range(5))
    second = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)
    assert (first.spooled, second.spooled) == (5, 0)
    log.down = False
    assert first.wait_replayed(DEADLINE_S)
    assert copies(log) == {f"p{i:04d}": (1, 1) for i in range(5)}
    second.close()
    first.close()
    log.close()


def test_without_a_spool_the_stores_error_reaches_the_caller(tmp_path: Path) -> None:
    log = FlakyLog(tmp_path / "audit.db")
    log.down = True
    writer = GroupCommitWriter(log)
    with pytest.raises(BackendUnavailableError, match="down"):
        write_all(writer, range(3))
    writer.close()
    log.close()


def test_a_row_the_store_rejects_is_an_error_for_its_caller_not_spooled(
    tmp_path: Path,
) -> None:
    log = FlakyLog(tmp_path / "audit.db")
    log.refuse = True
    writer = GroupCommitWriter(log, spool=tmp_path / "spool", **FAST)
    with pytest.raises(ValueError, match="rejects"):
        write_all(writer, range(3))
    assert (writer.spooled, writer.degraded) == (0, False)
    writer.close()
    log.close()


def test_inserting_the_same_spooled_rows_twice_keeps_one_copy(tmp_path: Path) -> None:
    spool = AuditSpool.create(tmp_path / "spool")
    spool.append([], [record(i) for i in range(4)])
    rows, entities = spool.oldest(10)
    log = SqliteAuditLog(tmp_path / "audit.db")
    assert log.insert_rows(rows, entities) == 4
    assert log.insert_rows(rows, entities) == 0
    assert copies(log) == {f"p{i:04d}": (1, 1) for i in range(4)}
    assert log.get("p0003") == record(3)  # the spool keeps exactly what the log would
    spool.close()
    log.close()
