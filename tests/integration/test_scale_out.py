"""Serving processes are stateless: two ``driftloop serve`` processes (two workers each)
behind HAProxy, configured by deploy/haproxy/haproxy.cfg, sharing the registry and the
audit log in PostgreSQL. A change made once reaches every process; a process killed under
load costs no acknowledged prediction, and the balancer's health check takes it out."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from balancer import haproxy_binary, shipped_config
from scale_out import ADMIN_TOKEN, Cluster, Process, cluster, request_row, shared_redis
from services import require_postgres

# runs in CI (haproxy from .ci/run); a minute or two, most of it four workers starting
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module (starting four workers is most of its run time); the
    kill test comes last in the file, so the others see both processes alive."""
    haproxy_binary()  # skip (or fail in CI) before starting anything
    folder = tmp_path_factory.mktemp("scale-out")
    with cluster(folder, require_postgres(), shared_redis(), processes=2, workers=2) as running:
        yield running


def test_the_shipped_haproxy_config_is_valid(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(shipped_config(18000, 18404, ["127.0.0.1:18001", "127.0.0.1:18002"]))
    checked = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _gauges(base: str, metric: str) -> list[tuple[str, float]]:
    """``metric``'s samples in one process's /metrics (one per worker): labels, value."""
    text = httpx2.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ).text
    return [
        (line.split("{", 1)[1].rsplit("}", 1)[0], float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith(metric + "{")
    ]


def _every_worker_of(process: Process, workers: int, metric: str, wanted: str) -> bool:
    """Whether each of the process's workers reports ``metric`` = 1 for labels containing
    ``wanted`` (and 0 for the others)."""
    on = [labels for labels, value in _gauges(process.base, metric) if value == 1.0]
    return len(on) == workers and all(wanted in labels for labels in on)


def _eventually(check: object, what: str, within_s: float = 120) -> None:
    """Until ``check()`` is true: a bound for a change that never arrives, not a timing
    assertion (the servers follow changes every second)."""
    assert callable(check)
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_an_alias_change_and_a_traffic_change_reach_every_process(two_servers: Cluster) -> None:
    for process in two_servers.processes:  # both read the same online features from Redis
        for card, missing in (("c7", []), ("unknown-card", ["count_1d", "amount_7d"])):
            body = {"instances": [request_row(7, card)]}
            answer = httpx2.post(f"{process.base}/v1/models/fraud/predict", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"][0].get("missing", []) == missing

    registry = two_servers.registry()
    try:
        registry.set_alias("fraud", "champion", 2, who="ci", why="promote")
    finally:
        registry.close()
    for process in two_servers.processes:  # each process asked directly, not through haproxy
        _eventually(
            lambda p=process: _every_worker_of(  # type: ignore[misc]
                p, two_servers.workers, "driftloop_model_info", 'version="2"'
            ),
            f"{process.base} still serves another champion than version 2",
        )

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"arms": {"champion": 50, "challenger": 50}, "reason": "a/b"}
    with httpx2.Client(base_url=two_servers.balancer.url, timeout=30) as client:
        response = client.put("/v1/models/fraud/traffic", json=body, headers=admin)
    assert response.status_code == 200, response.text
    revision = response.json()["revision"]
    for process in two_servers.processes:
        _eventually(
            lambda p=process: (
                [v for _, v in _gauges(p.base, "driftloop_traffic_revision")]
                == [revision] * two_servers.workers
            ),
            f"{process.base} does not route by traffic revision {revision}",
        )


async def _load_through_kill(
    url: str, victim: Process, kill_after: int, after_kill: int
) -> tuple[list[str], dict[int, int]]:
    """Predictions from 16 clients through the balancer; ``victim`` is SIGKILLed once
    ``kill_after`` are acknowledged, and the load goes on until ``after_kill`` more are.
    Returns the acknowledged prediction ids (repeats kept) and the count per status (0:
    no answer)."""
    acknowledged: list[str] = []
    statuses: dict[int, int] = {}
    killed_at: int | None = None
    deadline = time.monotonic() + 300  # a bound for a cluster that stops answering

    async def client_loop(worker: int) -> None:
        nonlocal killed_at
        limits = httpx2.Limits(max_connections=1)
        async with httpx2.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            i = 0
            while killed_at is None or len(acknowledged) < killed_at + after_kill:
                if time.monotonic() > deadline:
                    return
                i += 1
                instances = [request_row(worker * 100_000 + i * 3 + k) for k in range(1 + i % 3)]
                try:
                    response = await client.post(
                        "/v1/models/fraud/predict", json={"instances": instances}
                    )
                except httpx2.TransportError:  # no answer at all: nothing acknowledged
                    statuses[0] = statuses.get(0, 0) + 1  # (haproxy may close a client
                    continue  # connection whose request died with its server)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    acknowledged.extend(p["prediction_id"] for p in response.json()["predictions"])
                if killed_at is None and len(acknowledged) >= kill_after:
                    victim.kill()  # the whole server: parent and workers, mid-load
                    killed_at = len(acknowledged)

    await asyncio.gather(*(client_loop(w) for w in range(16)))
    return acknowledged, statuses


def test_a_process_killed_under_load_costs_no_acknowledged_prediction(
    two_servers: Cluster,
) -> None:
    """Kills a process of the module's cluster: keep this test last in the file."""
    victim, survivor = two_servers.processes
    acknowledged, statuses = asyncio.run(
        _load_through_kill(two_servers.balancer.url, victim, kill_after=400, after_kill=400)
    )
    assert victim.proc.poll() is not None, f"never killed: {statuses}"
    assert len(acknowledged) >= 800, f"the survivor did not take the load: {statuses}"

    # the health check takes the dead process out; then every request is answered
    two_servers.balancer.wait_for({"s1": "DOWN", "s2": "UP"})
    for i in range(30):  # new connections each time: nothing rides on an old one
        with httpx2.Client(base_url=two_servers.balancer.url, timeout=30) as client:
            body = {"instances": [request_row(i)]}
            response = client.post("/v1/models/fraud/predict", json=body)
        assert response.status_code == 200, response.text
        acknowledged.append(response.json()["predictions"][0]["prediction_id"])
    assert survivor.proc.poll() is None

    assert len(set(acknowledged)) == len(acknowledged), "a prediction id was answered twice"
    logged = two_servers.audit_ids()
    assert len(set(logged)) == len(logged), "the audit log holds a prediction id twice"
    missing = set(acknowledged) - set(logged)
    assert not missing, f"{len(missing)} acknowledged predictions are not in the audit log"
