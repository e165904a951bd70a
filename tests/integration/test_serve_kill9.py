"""A real server under load, killed with SIGKILL: no acknowledged prediction is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest

from driftloop.audit import SqliteAuditLog
from server_process import start_server
from serving_helpers import row

pytestmark = pytest.mark.integration


async def load_until_killed(base: str, proc: subprocess.Popen[bytes], kill_after: int) -> set[str]:
    acknowledged: set[str] = set()
    killed = asyncio.Event()

    async def client_loop(worker: int) -> None:
        limits = httpx2.Limits(max_connections=1)
        async with httpx2.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
            i = 0
            while not killed.is_set() or i % 7:  # keep sending a little past the kill
                i += 1
                instances = [row(worker * 100_000 + i * 3 + k) for k in range(1 + i % 3)]
                try:
                    response = await client.post(
                        "/v1/models/fraud/predict", json={"instances": instances}
                    )
                except httpx2.TransportError:
                    if killed.is_set():
                        return
                    continue
                if response.status_code == 200:
                    for p in response.json()["predictions"]:
                        acknowledged.add(p["prediction_id"])
                if len(acknowledged) >= kill_after and not killed.is_set():
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole server: parent and workers
                    killed.set()

    await asyncio.gather(*(client_loop(w) for w in range(32)))
    return acknowledged


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_under_load_loses_no_acknowledged_prediction(tmp_path: Path, workers: int) -> None:
    proc, base = start_server(tmp_path, workers)
    try:
        acknowledged = asyncio.run(load_until_killed(base, proc, kill_after=600))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 600
    audit = SqliteAuditLog(tmp_path / "audit.db")
    try:
        now = datetime.now(UTC)
        frame = audit.window(now - timedelta(hours=1), now + timedelta(hours=1))
    finally:
        audit.close()
    missing = acknowledged - set(frame["prediction_id"])
    assert not missing, f"{len(missing)} acknowledged predictions are not in the audit log"


def test_metrics_sum_every_worker(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, workers=2)
    try:
        with httpx2.Client(base_url=base, timeout=10) as client:
            for i in range(40):  # new connections: the kernel spreads them over both workers
                with httpx2.Client(base_url=base, timeout=10) as one:
                    response = one.post("/v1/models/fraud/predict", json={"instances": [row(i)]})
                    assert response.status_code == 200
            text = client.get("/metrics").text
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("driftloop_predictions_total{")
    )
    assert total == 40.0


def test_a_traffic_change_reaches_every_worker(tmp_path: Path) -> None:
    token = "worker-test-token"
    proc, base = start_server(tmp_path, workers=2, extra={"DRIFTLOOP_ADMIN_TOKEN": token})
    url = "/v1/models/fraud/traffic"
    try:
        with httpx2.Client(base_url=base, timeout=30) as client:
            body = {"arms": {"challenger": 100}, "reason": "all in"}
            assert client.put(url, json=body).status_code == 401
            response = client.put(url, json=body, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            revision = response.json()["revision"]
            # each worker reports the revision it routes by (one gauge per process)
            deadline = time.monotonic() + 120  # a bound for a change that never arrives
            while True:
                lines = [
                    line
                    for line in client.get("/metrics").text.splitlines()
                    if line.startswith("driftloop_traffic_revision{")
                ]
                if len(lines) == 2 and all(float(x.rsplit(" ", 1)[1]) == revision for x in lines):
                    break
                assert time.monotonic() < deadline, lines
                time.sleep(0.1)
        versions = set()
        for i in range(40):  # new connections: the kernel spreads them over both workers
            with httpx2.Client(base_url=base, timeout=30) as one:
                answer = one.post("/v1/models/fraud/predict", json={"instances": [row(i)]})
                assert answer.status_code == 200
                versions.add(answer.json()["version"])
        assert versions == {"2"}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
