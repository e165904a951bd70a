"""Faults for Ray jobs: a worker killed in the middle of a task (importable by the test
cluster's workers, whose PYTHONPATH has this folder)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from driftloop.compute import BatchFunction, BatchSource, Engine

T = TypeVar("T")
R = TypeVar("R")


class KillFirstAttempt:
    """Calls ``fn``, except that the first call anywhere on the cluster SIGKILLs its own
    worker process first (writing its pid to ``marker``, created atomically, so exactly
    one task attempt dies); Ray must run that task again elsewhere."""

    def __init__(self, fn: Callable[[Any], Any], marker: Path) -> None:
        self.fn = fn
        self.marker = marker

    def __call__(self, item: Any) -> Any:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.fn(item)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: the worker was killed")


class WorkerKillingEngine:
    """An engine whose first task attempt kills its worker (see :class:`KillFirstAttempt`)."""

    def __init__(self, engine: Engine, marker: Path) -> None:
        self.engine = engine
        self.marker = marker
        self.name = engine.name

    @property
    def workers(self) -> int:
        return self.engine.workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return self.engine.map(KillFirstAttempt(fn, self.marker), items)

    def map_batches(
        self,
        make_fn: Callable[[], BatchFunction],
        source: str | Sequence[str] | BatchSource,
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        return self.engine.map_batches(make_fn, source, destination, batch_rows=batch_rows)

    def close(self) -> None:
        self.engine.close()


class KillAtRound:
    """A LightGBM callback for every training worker of a distributed fit: the first
    worker anywhere on the cluster to reach boosting round ``round_`` SIGKILLs its own
    process (writing its pid to ``marker``, created atomically, so exactly one worker
    dies, once). Every worker process also notes in ``marker.rounds`` the first round it
    ran (``PID ROUND`` lines): a group restarted from a checkpoint starts past 0."""

    def __init__(self, marker: Path, round_: int) -> None:
        self.marker = marker
        self.round = round_
        self._noted = False

    def __call__(self, env: Any) -> None:
        if not self._noted:
            with self.marker.with_suffix(".rounds").open("a") as rounds:
                rounds.write(f"{os.getpid()} {env.iteration}\n")
            self._noted = True
        if env.iteration != self.round:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    def first_rounds(self) -> list[tuple[int, int]]:
        """``(pid, first round)`` of every worker process that trained, in start order."""
        lines = self.marker.with_suffix(".rounds").read_text().split("\n")
        return [(int(p), int(r)) for p, r in (line.split() for line in lines if line)]
