"""A real ``driftloop serve`` process (with its workers) on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from driftloop.serving import DirectoryModelSource
from services import free_port
from serving_helpers import train

__all__ = ["start_server"]


def start_server(
    tmp_path: Path, workers: int, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    models = tmp_path / "models"
    DirectoryModelSource.save(models, "fraud", "1", train(1), aliases=["champion"])
    DirectoryModelSource.save(models, "fraud", "2", train(2), aliases=["challenger"])
    port = free_port()
    env = {
        **os.environ,
        "DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "DRIFTLOOP_SERVING__BATCHING__MAX_WAIT_MS": "1",
        "DRIFTLOOP_SERVING__CACHE__ENABLED": "false",
        **(extra or {}),
    }
    cmd = [sys.executable, "-m", "driftloop", "serve", "--models", str(models)]
    cmd += ["--port", str(port), "--workers", str(workers), "--host", "127.0.0.1"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp_path, start_new_session=True, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    # Wait for readiness: not a timing assertion, a bound for a server that never comes up
    # (two workers importing the stack took over a minute on a 2-core machine at load 6).
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx2.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError(f"server did not become ready: {log.read_text()[-2000:]}")
