"""Several ``driftloop serve`` processes sharing one registry and one audit log in
PostgreSQL (fresh schemas per test, dropped after) and online features in Redis (under a
key prefix of the test's own, deleted after; the database is never flushed) behind
HAProxy: the scale-out tests' cluster, and the shape docs/scale-out.md describes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg

from balancer import Balancer
from driftloop.audit._postgres import libpq_dsn
from driftloop.registry import Registry, Signature
from registry_helpers import postgres_schema
from server_process import launch_serve, wait_ready
from services import REDIS_URL, unavailable
from serving_helpers import FEATURES, card_store, row, train

__all__ = ["ADMIN_TOKEN", "CARDS", "Cluster", "Process", "cluster", "request_row", "shared_redis"]

ADMIN_TOKEN = "scale-out-admin"
CARDS = 50  # cards c0..c49 have online features; others have none
ENRICHED = ("count_1d", "amount_7d")  # read from Redis by card_id, not sent
FEATURES_PY = """
from driftloop.features import Entity, FeatureView, Field

card = Entity("card", ["card_id"])
card_stats = FeatureView(
    "card_stats", entities=[card], source="cards.parquet", timestamp_field="ts",
    schema=[Field("count_1d", "float64"), Field("amount_7d", "float64")],
)
"""


def request_row(seed: int, card: str | None = None) -> dict[str, object]:
    """A request's instance: a card id and the features not read from Redis."""
    sent = {k: v for k, v in row(seed).items() if k not in ENRICHED}
    return {"card_id": card if card is not None else f"c{seed % CARDS}", **sent}


def shared_redis() -> str:
    """The shared Redis test database's URL (checked, never flushed), or skip (fail
    under DRIFTLOOP_REQUIRE_SERVICES=1)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    finally:
        client.close()
    return REDIS_URL


def _features(online_url: str, folder: Path) -> None:
    """Online features of cards c0..c49 pushed to Redis under the test's prefix."""
    store = card_store(online_url, folder)
    now = datetime.now(UTC)
    try:
        store.push(
            "card_stats",
            [
                {"card_id": f"c{i}", "ts": now, "count_1d": float(i), "amount_7d": i * 10.0}
                for i in range(CARDS)
            ],
        )
    finally:
        store.close()


def _drop_prefix(redis_url: str, prefix: str) -> None:
    """Delete this test's keys only (the shared database is never flushed)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@dataclass
class Process:
    """One ``driftloop serve`` process (with its workers), in its own folder."""

    proc: subprocess.Popen[bytes]
    base: str
    folder: Path

    def kill(self) -> None:
        """SIGKILL the process and its workers (its process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@dataclass
class Cluster:
    """The processes, the balancer in front, and where they keep their state."""

    processes: list[Process]
    balancer: Balancer
    registry_url: str
    artifacts: str
    audit_dsn: str
    audit_schema: str
    workers: int
    env: dict[str, str] = field(default_factory=dict)

    def registry(self) -> Registry:
        return Registry.from_url(self.registry_url, self.artifacts)

    def audit_ids(self) -> list[str]:
        """Every prediction id in the shared audit log, duplicates kept."""
        with psycopg.connect(self.audit_dsn) as conn:
            query = f'SELECT prediction_id FROM "{self.audit_schema}".audit_predictions'
            return [str(r[0]) for r in conn.execute(query).fetchall()]


def _register(registry_url: str, artifacts: str) -> None:
    """Model ``fraud``: version 1 the champion, version 2 the challenger."""
    registry = Registry.from_url(registry_url, artifacts)
    try:
        frame = pd.DataFrame([row(i) for i in range(50)], columns=FEATURES)
        signature = Signature.from_frame(frame)
        registry.register("fraud", train(1), signature=signature, alias="champion")
        registry.register("fraud", train(2), signature=signature, alias="challenger")
    finally:
        registry.close()


@contextlib.contextmanager
def cluster(
    tmp_path: Path, postgres_url: str, redis_url: str, *, processes: int = 2, workers: int = 2
) -> Iterator[Cluster]:
    """``processes`` servers of ``workers`` each over fresh PostgreSQL schemas and a fresh
    Redis prefix, enriching requests by ``card_id``, behind HAProxy configured by
    deploy/haproxy/haproxy.cfg; everything stopped and dropped at the end."""
    balancer_folder = tmp_path / "haproxy"
    balancer_folder.mkdir()
    audit_schema = f"scale_{uuid.uuid4().hex[:12]}"
    audit_dsn = libpq_dsn(postgres_url)
    prefix = f"test:scale:{uuid.uuid4().hex[:12]}:"
    online_url = f"{redis_url}?prefix={prefix}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_drop_prefix, redis_url, prefix)
        registry_url = cleanup.enter_context(postgres_schema(postgres_url))
        _features(online_url, tmp_path)
        artifacts = str(tmp_path / "artifacts")  # object storage in production: s3://...
        _register(registry_url, artifacts)
        env = {
            "DRIFTLOOP_REGISTRY__URL": registry_url,
            "DRIFTLOOP_REGISTRY__ARTIFACT_ROOT": artifacts,
            "DRIFTLOOP_AUDIT__URL": f"{postgres_url}?schema={audit_schema}",
            "DRIFTLOOP_FEATURES__ONLINE_STORE": online_url,
            "DRIFTLOOP_ADMIN_TOKEN": ADMIN_TOKEN,
            "DRIFTLOOP_SERVING__BATCHING__MAX_WAIT_MS": "1",
            "DRIFTLOOP_SERVING__CACHE__ENABLED": "false",
        }
        started: list[Process] = []
        balancer: Balancer | None = None
        try:
            for i in range(processes):  # each in its own folder, as on its own machine
                folder = tmp_path / f"server{i}"
                folder.mkdir()
                (folder / "features.py").write_text(FEATURES_PY)
                args = ["--model", "fraud", "--entity-key", "card_id"]
                proc, base = launch_serve(args, workers, env, folder)
                started.append(Process(proc, base, folder))
            for p in started:  # started together, waited for together
                wait_ready(p.proc, p.base, p.folder / "server.log")
            balancer = Balancer(balancer_folder, [p.base.removeprefix("http://") for p in started])
            balancer.start()
            balancer.wait_for({f"s{i}": "UP" for i in range(1, processes + 1)})
            yield Cluster(
                started, balancer, registry_url, artifacts, audit_dsn, audit_schema, workers, env
            )
        finally:
            if balancer is not None:
                balancer.stop()
            for p in started:
                p.kill()
            with psycopg.connect(audit_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{audit_schema}" CASCADE')
