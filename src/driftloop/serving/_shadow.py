"""The shadow: a version that scores a copy of the traffic, off the response path.

A request is answered first; then a copy of it joins a bounded queue (full: the copy is
dropped and counted). A task drains the queue in chunks (one model call, one audit write
per chunk) and the shadow version scores in its own thread, so a shadow that is slow,
hangs or raises delays and fails nothing but itself. Its predictions go to the audit log under route
``shadow``, each id the primary prediction's id with ``:shadow`` appended, so the two
are joined row by row; they are never returned to a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftloop.serving._validation import ParsedInstances, RowSpec

if TYPE_CHECKING:
    from driftloop.serving._service import Service

__all__ = ["Shadow"]

log = logging.getLogger(__name__)

# the request's parser, its ids, and its instances (when complete: nothing to enrich or
# settle, so nothing the shadow's scoring would change) as read by the primary's spec
_Copy = tuple[Callable[[RowSpec], ParsedInstances], list[str], ParsedInstances | None, RowSpec]
_CHUNK = 256  # copies scored together
_GATHER_S = 0.05  # waited for more copies when fewer are queued: batches, not trickles


class Shadow:
    """The shadow queue of one served model."""

    def __init__(self, service: Service, capacity: int) -> None:
        self.service = service
        self.capacity = capacity
        self._queue: deque[_Copy] = deque()
        self._task: asyncio.Task[None] | None = None
        self._counters: dict[tuple[str, str], Any] = {}

    def offer(
        self,
        parse: Callable[[RowSpec], ParsedInstances],
        ids: list[str],
        parsed: ParsedInstances,
        spec: RowSpec,
    ) -> None:
        """Queue a copy of an answered request (``ids``: its prediction ids; ``parsed``:
        its instances as read by ``spec``, reused when the shadow reads the same)."""
        if len(self._queue) >= self.capacity:
            self._count("", "dropped")
            return
        self._queue.append((parse, ids, parsed if parsed.complete else None, spec))
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
            if len(self._queue) < _CHUNK:  # off the response path: let copies gather
                await asyncio.sleep(_GATHER_S)
            target = service.router.shadow
            deployment = service.deployments.get(target) if target is not None else None
            if deployment is None:
                self.retarget()
                return
            chunk: list[_Copy] = []
            while self._queue and len(chunk) < _CHUNK:
                chunk.append(self._queue.popleft())
            version = deployment.model.version
            copies: list[tuple[ParsedInstances, list[str]]] = []
            failed = 0
            same: dict[int, bool] = {}  # primary spec -> does the shadow read rows alike?
            for parse, ids, parsed, spec in chunk:
                alike = same.get(id(spec))
                if alike is None:
                    alike = same[id(spec)] = spec == deployment.spec
                try:  # by the shadow's own spec: it may take other features
                    rows = parsed if parsed is not None and alike else parse(deployment.spec)
                    copies.append((rows, [f"{pid}:shadow" for pid in ids]))
                except Exception as exc:
                    failed += 1
                    log.debug("Shadow %s cannot read a request: %s", version, exc)
            scored = 0
            if copies:
                try:
                    scored = await service.score_shadow(deployment, copies)
                except Exception as exc:  # the shadow raised: counted, nothing else
                    log.debug("Shadow %s failed: %s", version, exc)
                failed += len(copies) - scored
            self._count(version, "scored", scored)
            self._count(version, "failed", failed)

    def _count(self, version: str, outcome: str, n: int = 1) -> None:
        if n <= 0:
            return
        child = self._counters.get((version, outcome))
        if child is None:
            metric = self.service.metrics.shadow
            child = metric.labels(self.service.served.name, version, outcome).inc
            self._counters[version, outcome] = child
        child(n)
