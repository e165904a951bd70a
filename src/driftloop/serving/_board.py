"""Where every server process tells how it routes now: each arm's version, weight and
breaker state, and how many of its calls failed or were refused by an open breaker.

Breakers live in each process, so a page answered by one worker (or by ``driftloop ui``,
with no server at all) cannot see another's. Each process writes a small JSON file of
its own (``<host>-<pid>.json``, replaced atomically) into a folder of the project
(``.driftloop/workers/``) whenever what it tells changes and at least every
``refresh_s`` seconds; a reader merges the files, and calls a process *stale* when its
file is older than ``stale_s`` (it has stopped, hangs, or cannot write), and forgets it
past ``forget_s``. A process that stops cleanly removes its file.

The clock is a parameter, so tests step time instead of sleeping:

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> now = [100.0]
>>> board = WorkerBoard(folder, worker="host-1", clock=lambda: now[0])
>>> board.publish({"fraud": [{"name": "champion", "version": "3", "breaker": "closed"}]})
>>> now[0] = 112.0
>>> [(r.worker, r.stale, r.models["fraud"][0]["breaker"]) for r in board.read()]
[('host-1', True, 'closed')]
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftloop.core.config import Settings

__all__ = ["WorkerBoard", "WorkerReport"]

STALE_S = 10.0  # a worker silent this long is shown as stale
FORGET_S = 3600.0  # and past this, not shown at all (its file is removed by the next writer)

# model name -> its arms as routed (each with name, version, weight, breaker, failed, refused)
Snapshot = Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class WorkerReport:
    """What one server process last told: its arms per model, when (``at``, seconds of
    the epoch), and whether that is too long ago to trust (``stale``)."""

    worker: str
    pid: int
    at: float
    age_s: float
    stale: bool
    models: dict[str, list[dict[str, Any]]]


class WorkerBoard:
    """One folder of per-process reports: :meth:`publish` writes this process's,
    :meth:`read` returns everyone's."""

    def __init__(
        self,
        folder: Path,
        *,
        worker: str | None = None,
        stale_s: float = STALE_S,
        forget_s: float = FORGET_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.pid = os.getpid()
        self.worker = worker or f"{socket.gethostname()}-{self.pid}"
        self.stale_s = stale_s
        self.forget_s = forget_s
        self._clock = clock

    @classmethod
    def of_project(cls, settings: Settings, **options: Any) -> WorkerBoard:
        """The board of the project at ``settings`` (``.driftloop/workers/``), which
        ``driftloop serve`` writes and every dashboard of the project reads."""
        return cls(settings.state_dir() / "workers", **options)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.worker}.json"

    def publish(self, models: Snapshot) -> None:
        """Replace this process's report (atomically: a reader sees the old or the new)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {"worker": self.worker, "pid": self.pid, "at": self._clock(), "models": models}
        temporary = self.folder / f".{self.worker}.{time.monotonic_ns()}.tmp"
        temporary.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)

    def remove(self) -> None:
        """This process stops: its report goes (the others' stay)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def forget_old(self) -> None:
        """Remove the reports of processes silent past ``forget_s`` (killed ones)."""
        if not self.folder.is_dir():
            return
        for report in self.read(keep_forgotten=True):
            if report.age_s > self.forget_s:
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f"{report.worker}.json").unlink()

    def read(self, *, keep_forgotten: bool = False) -> list[WorkerReport]:
        """Every process's last report, freshest first (unreadable files are skipped:
        a file is replaced whole, so only a foreign one can be)."""
        if not self.folder.is_dir():
            return []
        now = self._clock()
        found = []
        for path in self.folder.glob("*.json"):
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
                at = float(body["at"])
                models = {str(k): [dict(a) for a in v] for k, v in dict(body["models"]).items()}
                report = WorkerReport(
                    worker=str(body["worker"]),
                    pid=int(body["pid"]),
                    at=at,
                    age_s=max(0.0, now - at),
                    stale=now - at > self.stale_s,
                    models=models,
                )
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if keep_forgotten or report.age_s <= self.forget_s:
                found.append(report)
        return sorted(found, key=lambda r: (r.age_s, r.worker))
