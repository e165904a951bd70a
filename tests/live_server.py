"""A real ``driftloop serve`` on 127.0.0.1 with tight [serving] limits, for hostile-client
tests (tests/reliability)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

from driftloop.serving import DirectoryModelSource
from services import free_port
from serving_helpers import train

LIMITS = {  # small, so the tests reach them quickly
    "DRIFTLOOP_SERVING__HEADER_TIMEOUT_S": "2",
    "DRIFTLOOP_SERVING__BODY_TIMEOUT_S": "2",
    "DRIFTLOOP_SERVING__KEEP_ALIVE_S": "2",
    "DRIFTLOOP_SERVING__MAX_CONNECTIONS": "100",
    "DRIFTLOOP_SERVING__MAX_HEADER_BYTES": "8192",
}


@dataclass(frozen=True)
class LiveServer:
    base: str
    host: str
    port: int
    pid: int
    log: Path

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def probe(self) -> int:
        """One fresh client's request: the status it got (0: refused or reset)."""
        try:
            return httpx2.get(f"{self.base}/healthz", timeout=10).status_code
        except httpx2.TransportError:
            return 0

    def count(self, endpoint: str, status: int) -> float:
        """``driftloop_requests_total{endpoint, status}`` now."""
        text = httpx2.get(f"{self.base}/metrics", timeout=10).text
        want = f'driftloop_requests_total{{endpoint="{endpoint}",status="{status}"}} '
        for line in text.splitlines():
            if line.startswith(want):
                return float(line[len(want) :])
        return 0.0

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@contextlib.contextmanager
def live_server(
    root: Path,
    args: list[str] | None = None,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """The server, run in ``root`` with ``args`` (default: a LightGBM model ``fraud`` from
    a models folder in ``root``), ``workers`` processes and ``env`` added to its
    environment; killed on exit."""
    if args is None:
        models = root / "models"
        DirectoryModelSource.save(models, "fraud", "1", train(1), aliases=["champion"])
        args = ["--models", str(models)]
    port = free_port()
    env = {
        **os.environ,
        "DRIFTLOOP_AUDIT__URL": f"sqlite:///{root / 'audit.db'}",
        "DRIFTLOOP_SERVING__BATCHING__MAX_WAIT_MS": "1",
        **LIMITS,
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "driftloop", "serve", *args]
    cmd += ["--port", str(port), "--workers", str(workers), "--host", "127.0.0.1"]
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=root, start_new_session=True, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # a bound for a server that never comes up, not a timing assertion
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
            try:
                if httpx2.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        yield LiveServer(base, "127.0.0.1", port, proc.pid, log)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
