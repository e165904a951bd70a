"""Entity rows staged and merged (a0007): a commit or a merge whose answer was lost, and
retried, leaves each entity row stored once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftloop.audit import AuditRecord, SqliteAuditLog
from driftloop.audit._sql import ENTITY_PARTS, entity_part
from driftloop.core.errors import BackendUnavailableError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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
        entity_keys={"card_id": f"c{i % 3}", "terminal_id": f"t{i % 2}"},
    )


class LostAnswerLog(SqliteAuditLog):
    """A log whose next ``lose`` write transactions commit, then fail as a dropped
    connection would (the acknowledgement lost); it reconnects to the same file."""

    lose = 0
    lose_merge = False  # the next merge's answer only

    def _move_staged(self, cur: Any, table: str) -> int:
        moved = super()._move_staged(cur, table)
        if self.lose_merge:
            self.lose_merge, self.lose = False, self.lose + 1
        return moved

    def _connect(self) -> Any:
        return sqlite3.connect(self.path, check_same_thread=False)

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Any]:
        with super()._transaction(write=write) as cur:
            yield cur
        if write and self.lose:
            self.lose -= 1
            self._conn.close()
            self._conn = None
            raise BackendUnavailableError("The answer to the commit was lost (test).")


STAGING = [f"audit_entities_recent_{part}" for part in range(ENTITY_PARTS)]


def stored(log: SqliteAuditLog) -> list[tuple[str, str]]:
    """Every entity row, merged or staged: (prediction id, name)."""
    tables = ["audit_entities", *STAGING]
    with log._transaction(write=False) as cur:
        cur.execute(
            " UNION ALL ".join(f"SELECT prediction_id, name FROM {t}" for t in tables)
            + " ORDER BY 1, 2"
        )
        return [tuple(row) for row in cur.fetchall()]


def staged(log: SqliteAuditLog) -> int:
    with log._transaction(write=False) as cur:
        cur.execute(" UNION ALL ".join(f"SELECT COUNT(*) FROM {t}" for t in STAGING))
        return sum(row[0] for row in cur.fetchall())


def test_a_retried_commit_whose_first_try_landed_stages_its_entity_rows_once(
    tmp_path: Path,
) -> None:
    log = LostAnswerLog(tmp_path / "audit.db")
    log.entity_merge_rows = 10_000
    log.lose = 1
    log.write([record(i) for i in range(5)])  # lands, answer lost, retried: all known
    expected = sorted((f"p{i:04d}", n) for i in range(5) for n in ("card_id", "terminal_id"))
    assert stored(log) == expected
    assert log.by_entity("terminal_id", "t1")["prediction_id"].tolist() == ["p0001", "p0003"]
    log.close()


def test_a_merge_whose_answer_was_lost_moves_nothing_twice(tmp_path: Path) -> None:
    cards = [v for v in (f"c{k}" for k in range(200)) if entity_part("card_id", v) == 0][:3]
    log = LostAnswerLog(tmp_path / "audit.db")
    log.entity_merge_rows = 4 * ENTITY_PARTS  # a staging table merged per 4 rows staged

    def write(ids: range) -> None:
        log.write([replace(record(i), entity_keys={"card_id": cards[i % 3]}) for i in ids])

    write(range(3))  # 3 staged, all in table 0
    log.lose_merge = True
    write(range(3, 4))  # the merge of table 0 lands, its answer is lost
    assert (log.lose, staged(log)) == (0, 0)
    write(range(4, 5))  # table 0 again: only p0004 is left to move
    assert staged(log) == 0
    log.lose = 1
    write(range(5, 9))  # lands, answer lost, retried: merges table 1, which has none
    assert staged(log) == 4
    log.close()  # merges the rest
    again = SqliteAuditLog(tmp_path / "audit.db")
    assert stored(again) == [(f"p{i:04d}", "card_id") for i in range(9)]
    assert staged(again) == 0
    assert len(again.by_entity("card_id", cards[0])) == 3
    again.close()
