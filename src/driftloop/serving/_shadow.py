"""The shadow: a version that scores a copy of the traffic, off the response path.

A request is answered first; then a copy of it joins a bounded queue (full: the copy is
dropped and counted). A task drains the queue in chunks through the shadow version's
batcher, which scores in its own thread, so a shadow that is slow, hangs or raises
delays and fails nothing but itself. Its predictions go to the audit log under route
``shadow``, each id the primary prediction's id with ``:shadow`` appended, so the two
are joined row by row; they are never returned to a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftloop.serving._validation import Options, ParsedInstances, RowSpec

if TYPE_CHECKING:
    from driftloop.serving._service import Service

__all__ = ["Shadow"]

log = logging.getLogger(__name__)

_Copy = tuple[Callable[[RowSpec], ParsedInstances], list[str]]
_NO_OPTIONS = Options()


class Shadow:
    """The shadow queue of one served model."""

    def __init__(self, service: Service, capacity: int) -> None:
        self.service = service
        self.capacity = capacity
        self._queue: deque[_Copy] = deque()
        self._task: asyncio.Task[None] | None = None
        self._counters: dict[tuple[str, str], Any] = {}

    def offer(self, parse: Callable[[RowSpec], ParsedInstances], ids: list[str]) -> None:
        """Queue a copy of an answered request (``ids``: its prediction ids)."""
        if len(self._queue) >= self.capacity:
            self._count("", "dropped")
            return
        self._queue.append((parse, ids))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def retarget(self) -> None:
        """The policy changed: copies for a shadow that is gone are dropped."""
        if self.service.router.shadow is None:
            for _ in range(len(self._queue)):
                self._count("", "dropped")
            self._queue.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _drain(self) -> None:
        service = self.service
        while self._queue:
            target = service.router.shadow
            deployment = service.deployments.get(target) if target is not None else None
            if deployment is None:
                self.retarget()
                return
            chunk: list[_Copy] = []
            while self._queue and len(chunk) < 64:
                chunk.append(self._queue.popleft())
            version = deployment.model.version
            results = await asyncio.gather(
                *(self._one(deployment, parse, ids) for parse, ids in chunk),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    self._count(version, "failed")
                    log.debug("Shadow %s failed: %s", version, result)
                else:
                    self._count(version, "scored")

    async def _one(
        self, deployment: Any, parse: Callable[[RowSpec], ParsedInstances], ids: list[str]
    ) -> None:
        parsed = parse(deployment.spec)
        await self.service._score_on(
            deployment,
            parsed,
            _NO_OPTIONS,
            route="shadow",
            started=time.perf_counter(),
            ids=[f"{pid}:shadow" for pid in ids],
        )

    def _count(self, version: str, outcome: str) -> None:
        child = self._counters.get((version, outcome))
        if child is None:
            metric = self.service.metrics.shadow
            child = metric.labels(self.service.served.name, version, outcome).inc
            self._counters[version, outcome] = child
        child()
