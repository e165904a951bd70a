"""Several ``driftloop serve`` processes sharing one registry and one audit log in
PostgreSQL (fresh schemas per test, dropped after) behind HAProxy: the scale-out tests'
cluster, and the shape docs/scale-out.md describes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg

from balancer import Balancer
from driftloop.audit._postgres import libpq_dsn
from driftloop.registry import Registry, Signature
from registry_helpers import postgres_schema
from server_process import launch_serve, wait_ready
from serving_helpers import FEATURES, row, train

__all__ = ["ADMIN_TOKEN", "Cluster", "Process", "cluster"]

ADMIN_TOKEN = "scale-out-admin"


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
    tmp_path: Path, postgres_url: str, *, processes: int = 2, workers: int = 2
) -> Iterator[Cluster]:
    """``processes`` servers of ``workers`` each over fresh PostgreSQL schemas, behind
    HAProxy configured by deploy/haproxy/haproxy.cfg; everything stopped and dropped at
    the end."""
    balancer_folder = tmp_path / "haproxy"
    balancer_folder.mkdir()
    audit_schema = f"scale_{uuid.uuid4().hex[:12]}"
    audit_dsn = libpq_dsn(postgres_url)
    with postgres_schema(postgres_url) as registry_url:
        artifacts = str(tmp_path / "artifacts")  # object storage in production: s3://...
        _register(registry_url, artifacts)
        env = {
            "DRIFTLOOP_REGISTRY__URL": registry_url,
            "DRIFTLOOP_REGISTRY__ARTIFACT_ROOT": artifacts,
            "DRIFTLOOP_AUDIT__URL": f"{postgres_url}?schema={audit_schema}",
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
                proc, base = launch_serve(["--model", "fraud"], workers, env, folder)
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
