"""PostgreSQL crashes under load: no acknowledged prediction is lost or stored twice,
and the log and its writer heal by themselves once it is back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from driftloop.audit import AuditRecord, GroupCommitWriter, PostgresAuditLog
from driftloop.audit._postgres import libpq_dsn
from driftloop.audit._sql import ENTITY_PARTS
from driftloop.core.errors import BackendUnavailableError
from own_postgres import OwnPostgres

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE_S = 60.0  # only ever reached when the behaviour under test is broken
CLIENTS = 8


def entity_counts(schema: str) -> str:
    """Entity rows per prediction id, merged or staged (a0007)."""
    tables = ["audit_entities"] + [f"audit_entities_recent_{p}" for p in range(ENTITY_PARTS)]
    union = " UNION ALL ".join(f"SELECT prediction_id FROM {schema}.{t}" for t in tables)
    return f"SELECT prediction_id, COUNT(*) FROM ({union}) AS e GROUP BY 1"


def record(client: int, i: int) -> AuditRecord:
    return AuditRecord(
        prediction_id=f"c{client}-{i:05d}",
        ts=T0 + timedelta(milliseconds=i),
        model="fraud",
        version="1",
        route="champion",
        score=0.5,
        decision="approve",
        latency_ms=1.0,
        features={"amount": float(i)},
        entity_keys={"card_id": f"k{i % 7}"},
        feature_ts={},
    )


def test_an_outage_of_postgres_loses_no_acknowledged_prediction(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    log = PostgresAuditLog(own_pg.url, schema="outage", statement_timeout_s=5)
    writer = GroupCommitWriter(
        log, spool=tmp_path / "spool", commit_timeout_s=5, retry_initial_s=0.05, retry_max_s=1
    )
    acknowledged: list[str] = []
    degraded_seen: list[bool] = []

    async def until(count: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while len(acknowledged) < count:
            assert time.monotonic() < deadline, f"{len(acknowledged)} of {count} acknowledged"
            await asyncio.sleep(0.01)

    async def client(k: int, stop: asyncio.Event) -> None:
        for i in range(100_000):  # bounded; stops long before
            if stop.is_set():
                return
            r = record(k, i)
            await writer.awrite([r])  # must never raise
            acknowledged.append(r.prediction_id)

    async def main() -> None:
        stop = asyncio.Event()
        clients = [asyncio.create_task(client(k, stop)) for k in range(CLIENTS)]
        try:
            await until(300)  # healthy
            await asyncio.to_thread(own_pg.stop)  # as a crash, mid-load
            down = len(acknowledged)
            await until(down + 300)  # answered while PostgreSQL is down
            degraded_seen.append(writer.degraded)
            await asyncio.to_thread(own_pg.start)
            await until(len(acknowledged) + 300)
        finally:
            stop.set()
            await asyncio.gather(*clients)

    try:
        asyncio.run(main())
        assert degraded_seen == [True]
        assert writer.wait_replayed(DEADLINE_S)
        assert writer.replayed > 0
        with psycopg.connect(libpq_dsn(own_pg.url)) as conn:
            stored = dict(
                conn.execute(
                    "SELECT prediction_id, COUNT(*) FROM outage.audit_predictions GROUP BY 1"
                ).fetchall()
            )
            entities = dict(conn.execute(entity_counts("outage")).fetchall())
        assert len(acknowledged) == len(set(acknowledged))
        assert set(acknowledged) <= set(stored)  # none lost
        assert set(stored.values()) == {1}  # none twice
        assert {pid: entities.get(pid) for pid in stored} == dict.fromkeys(stored, 1)
        assert log.get(acknowledged[-1]).prediction_id == acknowledged[-1]  # reconnected
        assert not writer.degraded
    finally:
        writer.close()
        log.close()


def test_a_read_after_a_restart_reconnects(own_pg: OwnPostgres) -> None:
    url = own_pg.url.replace("postgres@", "postgres:s3cret@")  # trust: any password
    log = PostgresAuditLog(url, schema="restart", connect_timeout_s=2)
    log.write([record(0, 0)])
    own_pg.stop()
    with pytest.raises(BackendUnavailableError, match="unreachable") as down:
        log.get("c0-00000")
    assert "s3cret" not in str(down.value)
    own_pg.start()
    assert log.get("c0-00000").features == {"amount": 0.0}  # same object, new connection
    log.close()


def test_a_hung_postgres_backend_is_outwaited_and_nothing_is_stored_twice(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    """SIGSTOP the server process behind the log's connection: no statement timeout can
    fire, the driver waits; callers are answered from the spool after commit_timeout_s,
    and once the backend runs again every row is stored exactly once."""
    log = PostgresAuditLog(own_pg.url, schema="hang")
    writer = GroupCommitWriter(
        log, spool=tmp_path / "spool", commit_timeout_s=0.5, retry_initial_s=0.05, retry_max_s=0.5
    )
    ids = [record(0, i).prediction_id for i in range(60)]

    async def write(lo: int, hi: int) -> None:
        await asyncio.gather(*(writer.awrite([record(0, i)]) for i in range(lo, hi)))

    backend = log._conn.info.backend_pid
    try:
        asyncio.run(write(0, 20))  # healthy
        os.kill(backend, signal.SIGSTOP)
        try:
            asyncio.run(write(20, 60))  # answered from the spool, none raises
            assert writer.degraded
            assert writer.spooled >= 40
        finally:
            os.kill(backend, signal.SIGCONT)
        assert writer.wait_replayed(DEADLINE_S)
        with psycopg.connect(libpq_dsn(own_pg.url)) as conn:
            stored = dict(
                conn.execute(
                    "SELECT prediction_id, COUNT(*) FROM hang.audit_predictions GROUP BY 1"
                ).fetchall()
            )
            entities = dict(conn.execute(entity_counts("hang")).fetchall())
        assert stored == dict.fromkeys(ids, 1)
        assert entities == dict.fromkeys(ids, 1)
    finally:
        writer.close()
        log.close()


def test_the_server_answers_through_an_audit_outage_and_keeps_every_prediction(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    """The model server under load while its PostgreSQL audit log crashes and comes back:
    every request is answered, and every prediction it acknowledged is in the log after."""
    import threading

    from starlette.testclient import TestClient

    from driftloop.core.config import ServingConfig
    from driftloop.serving import InMemoryModelSource, ServedModel, create_app
    from serving_helpers import row, train

    log = PostgresAuditLog(own_pg.url, schema="served", statement_timeout_s=5)
    source = InMemoryModelSource()
    source.add("fraud", "1", train(1), aliases=["champion"])
    settings = ServingConfig.model_validate({"cache": {"enabled": False}, "audit_timeout_s": 2})
    app = create_app(
        [ServedModel("fraud")],
        source,
        settings=settings,
        audit=log,
        refresh_s=0,
        spool=tmp_path / "spool",
    )
    acknowledged: list[tuple[float, str]] = []
    statuses: list[int] = []
    stop = threading.Event()
    with TestClient(app) as client:

        def load(worker: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                response = client.post(
                    "/v1/models/fraud/predict", json={"instances": [row(worker * 10_000 + i)]}
                )
                statuses.append(response.status_code)
                if response.status_code == 200:
                    pid = response.json()["predictions"][0]["prediction_id"]
                    acknowledged.append((time.monotonic(), pid))

        def after(moment: float, count: int) -> None:
            deadline = time.monotonic() + DEADLINE_S * 3
            while sum(at > moment for at, _ in acknowledged) < count:
                assert time.monotonic() < deadline, "the server stopped answering"
                time.sleep(0.05)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            after(0.0, 50)
            own_pg.stop()
            after(time.monotonic(), 50)  # answered while PostgreSQL is down
            spooling = app.server.writer.degraded
            own_pg.start()
            after(time.monotonic(), 50)
        finally:
            stop.set()
            for t in threads:
                t.join(DEADLINE_S)
        assert spooling, "the writer never noticed the outage"
        assert app.server.writer.wait_replayed(DEADLINE_S * 3)
        assert client.get("/readyz").json()["degraded"] == []
    assert set(statuses) == {200}
    ids = {pid for _, pid in acknowledged}
    frame = log.window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    assert len(frame) == len(set(frame["prediction_id"]))  # none stored twice
    missing = ids - set(frame["prediction_id"])
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
    log.close()
