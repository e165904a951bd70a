"""A local Ray cluster of its own for a test: ``ray start --head`` on a free port with two
CPUs (two worker processes at a time) and a small object store, stopped with the process
group it runs in (never ``ray stop``, which would stop every Ray on the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import free_port, port_open, require_ray

OBJECT_STORE_BYTES = 200 * 1024 * 1024
HERE = Path(__file__).resolve().parent


@contextmanager
def local_ray_cluster(cpus: int = 2) -> Iterator[str]:
    """The address (``127.0.0.1:PORT``) of a running head node with ``cpus`` CPUs."""
    require_ray()
    ray_cli = Path(sys.executable).with_name("ray")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="dl-ray-", dir="/tmp")  # short: Ray's socket paths
    # Workers import the tests' helpers (ray_faults) as the driver does: by their folder.
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    # A throwaway cluster on the loopback address only, so without Ray's token auth (its
    # token would be written to ~/.ray for every other Ray on the machine to find).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": path}
    env["RAY_AUTH_MODE"] = "disabled"
    cmd = [str(ray_cli), "start", "--head", "--block", f"--port={port}"]
    cmd += ["--node-ip-address=127.0.0.1"]
    cmd += [f"--num-cpus={cpus}", f"--object-store-memory={OBJECT_STORE_BYTES}"]
    cmd += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    log = Path(temp) / "head.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120  # a bound for a head that never comes up
        while not port_open("127.0.0.1", port):
            if head.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ray start failed: {log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def _stop(head: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the head's process group (``--block`` stops the node's processes on
    it), then SIGKILL to the group after 5 s: a head a driver has used takes ~30 s to
    stop gracefully, and nothing of this throwaway cluster needs keeping."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
        if _group_gone(head):
            return
        os.killpg(head.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not _group_gone(head):
            time.sleep(0.1)


def _group_gone(head: subprocess.Popen[bytes]) -> bool:
    head.poll()  # reap the head: a zombie still counts as a member of its group
    try:
        os.killpg(head.pid, 0)
    except ProcessLookupError:
        return True
    return False
