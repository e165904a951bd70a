"""HAProxy from the system packages in front of test servers, configured by the file the
docs show (deploy/haproxy/haproxy.cfg) with only its ports and servers replaced."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx2

from services import free_port, unavailable

__all__ = ["CONFIG", "Balancer", "haproxy_binary", "shipped_config"]

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy" / "haproxy.cfg"


def haproxy_binary() -> str:
    """The haproxy executable, or skip (fail under DRIFTLOOP_REQUIRE_SERVICES=1)."""
    binary = shutil.which("haproxy")
    if binary is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    return str(binary)


def shipped_config(port: int, stats_port: int, servers: list[str]) -> str:
    """deploy/haproxy/haproxy.cfg listening on ``port`` (stats on ``stats_port``) over
    ``servers`` (``host:port``), everything else as shipped."""
    text = CONFIG.read_text()
    text, binds = re.subn(r"bind 127\.0\.0\.1:8000\b", f"bind 127.0.0.1:{port}", text)
    text, stats = re.subn(r"bind 127\.0\.0\.1:8404\b", f"bind 127.0.0.1:{stats_port}", text)
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("server "))
    kept = [line for line in lines if not line.strip().startswith("server ")]
    ours = [f"    server s{i} {address}" for i, address in enumerate(servers, 1)]
    if (binds, stats) != (1, 1):
        raise AssertionError("deploy/haproxy/haproxy.cfg no longer binds 8000 and 8404")
    return "\n".join([*kept[:first], *ours, *kept[first:]]) + "\n"


class Balancer:
    """``start()`` / ``stop()`` one haproxy in the foreground over ``servers``."""

    def __init__(self, folder: Path, servers: list[str]) -> None:
        self.binary = haproxy_binary()
        self.port, self.stats_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "haproxy.cfg"
        self.config.write_text(shipped_config(self.port, self.stats_port, servers))
        self.log = folder / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-f", str(self.config), "-db"], stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60  # a bound for a balancer that never comes up
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited: {self.log.read_text()[-2000:]}")
            try:
                self.states()
                return
            except httpx2.TransportError:
                time.sleep(0.05)
        raise AssertionError("haproxy did not answer on its stats port")

    def states(self) -> dict[str, str]:
        """Each server's state as HAProxy's health checks see it (``UP``, ``DOWN``, ...)."""
        url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        text = httpx2.get(url, timeout=5).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == "driftloop_servers" and r["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for(self, wanted: dict[str, str], within_s: float = 120) -> None:
        """Until the servers' states are ``wanted`` (a bound for a check that never
        settles, not a timing assertion)."""
        deadline = time.monotonic() + within_s
        while (seen := self.states()) != wanted:
            assert time.monotonic() < deadline, f"haproxy sees {seen}, not {wanted}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None
