"""``driftloop serve`` with two workers: a keyed request is answered once whichever worker
takes each retry (the keys live in the audit store, SQLite or PostgreSQL), and feedback
takes the token given in ``DRIFTLOOP_FEEDBACK_TOKEN``."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import psycopg
import pytest

from driftloop.audit._postgres import libpq_dsn
from server_process import start_server
from services import require_postgres
from serving_helpers import row

pytestmark = pytest.mark.integration
TOKEN = "feedback-secret"


@pytest.fixture(params=["sqlite", "postgres"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    url = require_postgres()
    schema = f"idem_{uuid.uuid4().hex[:12]}"
    yield f"{url}?schema={schema}"
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _count(audit_url: str) -> int:
    if audit_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(audit_url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM audit_predictions").fetchone()[0])
    base, _, schema = audit_url.partition("?schema=")
    with psycopg.connect(libpq_dsn(base)) as conn:
        found = conn.execute(f'SELECT COUNT(*) FROM "{schema}".audit_predictions').fetchone()
        assert found is not None
        return int(found[0])


def test_retries_spread_over_two_workers_are_answered_once(tmp_path: Path, audit_url: str) -> None:
    proc, base = start_server(
        tmp_path,
        workers=2,
        extra={"DRIFTLOOP_AUDIT__URL": audit_url, "DRIFTLOOP_FEEDBACK_TOKEN": TOKEN},
    )
    body = {"instances": [row(1), row(2)]}
    try:
        answers = []
        for _ in range(12):  # new connections: the kernel spreads them over both workers
            with httpx2.Client(base_url=base, timeout=30) as client:
                answers.append(
                    client.post(
                        "/v1/models/fraud/predict", json=body, headers={"Idempotency-Key": "a1"}
                    )
                )
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert _count(audit_url) == 2
        ids = [p["prediction_id"] for p in answers[0].json()["predictions"]]
        labels = {"labels": [{"prediction_id": pid, "label": 1} for pid in ids]}
        with httpx2.Client(base_url=base, timeout=30) as client:
            assert client.post("/v1/feedback", json=labels).status_code == 401
            sent = client.post(
                "/v1/feedback", json=labels, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert sent.json() == {"accepted": 2, "unknown_count": 0, "unknown": []}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
