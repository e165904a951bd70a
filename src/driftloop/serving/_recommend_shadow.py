"""A recommender's shadow: copies of answered requests go to the shadow version off the
response path, in a thread of their own, and its lists are audited under route
``shadow`` (each id the primary's with ``:shadow``), never returned. A shadow that
raises or hangs never fails, delays or alters a primary answer, and its failures never
touch the arms' circuit breakers; copies past the queue's capacity are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from driftloop.audit import GroupCommitWriter
from driftloop.recsys import Recommendation, RecommendRequest
from driftloop.serving._recommend_audit import audit_record
from driftloop.serving._traffic import Router

if TYPE_CHECKING:  # the model's libraries load only when a recommender is used
    from driftloop.recsys import Recommender

    Compute = Callable[[Recommender, Sequence[RecommendRequest]], list[Recommendation]]

__all__ = ["Shadow"]

log = logging.getLogger(__name__)


class Shadow:
    """Copies for recommender ``name``'s shadow; ``compute`` answers a batch with a
    version (blocking: it runs in the shadow's own thread)."""

    def __init__(
        self, name: str, writer: GroupCommitWriter | None, compute: Compute, capacity: int
    ) -> None:
        self.name = name
        self.writer = writer
        self.tenant = "default"
        self._compute = compute
        self._capacity = capacity  # copies in flight; more are dropped
        self._pending = 0
        self.dropped = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # the shadow's own thread: a shadow that hangs holds it, and nothing else
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"rec-shadow-{name}")

    def offer(
        self,
        shadow: Recommender | None,
        router: Router,
        requests: Sequence[RecommendRequest],
        ids: Sequence[str],
        done: Sequence[Recommendation],
    ) -> None:
        """Copies of the answered requests the shadow samples (not those its own version
        answered) go to it off the response path; over capacity they are dropped."""
        if shadow is None or self.writer is None:
            return
        policy_shadow = router.shadow is not None
        picked = [
            k
            for k, answer in enumerate(done)
            if answer.version != shadow.version and (not policy_shadow or router.shadowed())
        ]
        if not picked:
            return
        if self._pending + len(picked) > self._capacity:
            self.dropped += len(picked)
            return
        self._pending += len(picked)
        copies = [requests[k] for k in picked]
        copy_ids = [f"{ids[k]}:shadow" for k in picked]
        task = asyncio.get_running_loop().create_task(self._answer(shadow, copies, copy_ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, rec: Recommender, requests: Sequence[RecommendRequest], ids: list[str]
    ) -> None:
        """The shadow version's lists for copies of answered requests, audited."""
        assert self.writer is not None
        try:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            answers = await loop.run_in_executor(self._pool, self._compute, rec, requests)
            latency_ms = (time.perf_counter() - started) * 1000.0
            stamp = datetime.now(UTC)
            name, tenant = self.name, self.tenant
            await self.writer.awrite(
                [
                    audit_record(name, pid, r, a, stamp, latency_ms, tenant, "shadow")
                    for pid, r, a in zip(ids, requests, answers, strict=True)
                ]
            )
        except Exception as exc:  # a shadow never fails a request
            self.failed += len(requests)
            log.debug("Shadow v%s of recommender %s failed: %s", rec.version, self.name, exc)
        finally:
            self._pending -= len(requests)

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        self._pool.shutdown(wait=False, cancel_futures=True)
