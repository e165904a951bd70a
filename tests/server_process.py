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

__all__ = ["launch_serve", "start_serve", "start_server", "wait_ready"]


def start_server(
    tmp_path: Path, workers: int, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    models = tmp_path / "models"
    DirectoryModelSource.save(models, "fraud", "1", train(1), aliases=["champion"])
    DirectoryModelSource.save(models, "fraud", "2", train(2), aliases=["challenger"])
    env = {
        "DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "DRIFTLOOP_SERVING__BATCHING__MAX_WAIT_MS": "1",
        "DRIFTLOOP_SERVING__CACHE__ENABLED": "false",
        **(extra or {}),
    }
    return start_serve(["--models", str(models)], workers, env, tmp_path)


def start_serve(
    args: list[str], workers: int, env: dict[str, str], folder: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``driftloop serve ARGS`` (see :func:`launch_serve`), once it is ready."""
    proc, base = launch_serve(args, workers, env, folder)
    wait_ready(proc, base, folder / "server.log")
    return proc, base


def launch_serve(
    args: list[str], workers: int, env: dict[str, str], folder: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``driftloop serve ARGS`` with ``workers`` on a free port, run in ``folder`` (its
    project folder, with ``server.log``) with ``env`` over this environment, in its own
    process group (``os.killpg`` kills it with its workers); not waiting for it."""
    port = free_port()
    cmd = [sys.executable, "-m", "driftloop", "serve", *args]
    cmd += ["--port", str(port), "--workers", str(workers), "--host", "127.0.0.1"]
    with (folder / "server.log").open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            cwd=folder,
            start_new_session=True,
            stdout=out,
            stderr=out,
        )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Until the server at ``base`` answers ``/readyz`` with 200 (killed if it never does)."""
    # Not a timing assertion, a bound for a server that never comes up (two workers
    # importing the stack took over a minute on a 2-core machine at load 6).
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx2.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError(f"server did not become ready: {log.read_text()[-2000:]}")
