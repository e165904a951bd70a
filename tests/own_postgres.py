"""A private PostgreSQL cluster for tests that stop, kill or restart their database.

The shared server on 5432 is never touched: :func:`own_postgres` makes a throwaway
cluster (``initdb``) in a temporary folder, listening on 127.0.0.1 on a free port, and
removes it afterwards. Run as root, the server binaries run as the ``postgres`` user
(``runuser``), which owns the folder. Without the binaries the test skips, or fails when
``DRIFTLOOP_REQUIRE_SERVICES=1`` (as :mod:`services` does)::

    def test_outage(own_pg: OwnPostgres) -> None:
        own_pg.stop()   # pg_ctl stop -m immediate: as a crash
        own_pg.start()  # crash recovery, same data, same port
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import free_port, unavailable

__all__ = ["OwnPostgres", "find_bin", "own_postgres"]


def find_bin() -> Path | None:
    """The newest PostgreSQL server binaries folder on this machine, if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return next((b for b in reversed(found) if (b / "initdb").exists()), None)


class OwnPostgres:
    """One private cluster: ``url`` reaches its ``postgres`` database as ``postgres``."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*self._as_postgres, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr}{tail}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start (again) on the same port; returns once it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            *("-D", str(self.data), "-l", str(self.folder / "server.log")),
            *("-o", options, "-w", "-t", "60", "start"),
            timeout=90,
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop; ``immediate`` is as a crash (no checkpoint, clients cut off)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A started private cluster, stopped and deleted on exit."""
    bin_dir = find_bin()
    if bin_dir is None:
        unavailable("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
    assert bin_dir is not None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("runuser is missing: PostgreSQL cannot be started as root without it")
    folder = Path(tempfile.mkdtemp(prefix="driftloop-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        cluster = OwnPostgres(bin_dir, folder)
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
