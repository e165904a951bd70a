"""Breakers live in each worker: one opened on one worker of a real ``driftloop serve
--workers 2`` shows on the traffic page whichever worker answers it, and on the page of
``driftloop ui`` running alone beside them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path

import httpx2
import pytest

from server_process import start_server
from services import free_port
from serving_helpers import row

pytestmark = pytest.mark.integration

# every call counts as slow: the breaker of the version a connection's worker scores with
# opens after five calls and stays open; the other worker's, never called, stays closed
BREAKER = {
    "DRIFTLOOP_SERVING__BREAKER__SLOW_MS": "0.000001",
    "DRIFTLOOP_SERVING__BREAKER__MIN_REQUESTS": "5",
    "DRIFTLOOP_SERVING__BREAKER__OPEN_S": "3600",
}


def words(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def arms_table(page: str) -> str:
    table = page[page.index('id="breakers-fraud"') :]
    return words(table[: table.index("</table>")])


def wait_for(probe: Callable[[], str], what: str, bound_s: float = 120.0) -> str:
    """Poll ``probe`` until it returns text (a bound for what never happens)."""
    deadline = time.monotonic() + bound_s
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_breaker_opened_on_one_worker_shows_on_every_page(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, workers=2, extra=BREAKER)
    ui: subprocess.Popen[bytes] | None = None
    try:
        with httpx2.Client(base_url=base, timeout=30) as one:  # one connection: one worker
            for i in range(8):
                one.post("/v1/models/fraud/predict", json={"instances": [row(i)]})

        def merged(url: str) -> str:
            try:
                page = httpx2.get(url, timeout=30).text
            except httpx2.TransportError:
                return ""
            if 'id="breakers-fraud"' not in page:
                return ""
            table = arms_table(page)
            return page if "open on 1 of 2" in table else ""

        answered: set[str] = set()
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            if len(answered) == 2:
                break
            page = wait_for(lambda: merged(f"{base}/ui/traffic"), "the open breaker on a page")
            assert "champion v1 100% closed on 1 of 2, open on 1 of 2" in arms_table(page)
            here = re.search(r"(\S+) \(answered this page\)", words(page))
            assert here is not None
            answered.add(here.group(1))
        assert len(answered) == 2, answered  # both workers' pages show the other's breaker

        port = free_port()
        env = {**os.environ, "DRIFTLOOP_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}"}
        cmd = [sys.executable, "-m", "driftloop", "ui", "--port", str(port)]
        ui = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True)
        alone = wait_for(
            lambda: merged(f"http://127.0.0.1:{port}/ui/traffic"), "driftloop ui's page"
        )
        assert "champion v1 100% closed on 1 of 2, open on 1 of 2" in arms_table(alone)
        assert "(answered this page)" not in alone  # no server process of its own
    finally:
        for process in (proc, ui):
            if process is not None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
