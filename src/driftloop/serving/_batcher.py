"""Dynamic batching: concurrent requests for one model become one vectorised call.

A batch closes when it holds ``max_rows`` rows (rows, not requests: a request of 300
rows counts 300) or when ``max_wait_s`` passed while earlier batches were still running.
When the server is idle a request runs at once: only requests already waiting on the
event loop join it. Batches overlap: while one waits for its audit commit the next one
is scored. Each caller gets back exactly the results of its own items, in order.

Items marked ``alone`` (a big request, or one asking for explanations) are a batch of
their own, started at once beside the queue: the small requests queued after them are
never held in their batch, so one large caller cannot set everyone's latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["DynamicBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class DynamicBatcher(Generic[T, R]):
    """Runs ``run(items) -> results`` (one result per item, same order) on batches.

    >>> async def double(items):
    ...     return [2 * x for x in items]
    >>> async def main():
    ...     batcher = DynamicBatcher(double, size=lambda x: 1, max_rows=8, max_wait_s=0.001)
    ...     return await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    >>> asyncio.run(main())
    [0, 2, 4, 6, 8]
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        size: Callable[[T], int],
        max_rows: int,
        max_wait_s: float,
        alone: Callable[[T], bool] | None = None,
    ) -> None:
        self._run = run
        self._size = size
        self._alone = alone
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._queue: list[tuple[T, int, asyncio.Future[R]]] = []
        self._rows = 0
        self._full: asyncio.Future[None] | None = None  # set when a waiting batch fills up
        self._drainer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # batches running (model, then audit)
        self._inflight = 0
        self.batches = 0  # how many model calls were made (for metrics and tests)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        rows = self._size(item)
        if self._alone is not None and self._alone(item):
            self._start([(item, rows, future)], queued=False)
            return await future
        self._queue.append((item, rows, future))
        self._rows += rows
        if self._rows >= self.max_rows and self._full is not None and not self._full.done():
            self._full.set_result(None)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # idle or not: take who is already here, wait for nobody
        while self._queue:
            if self._inflight and self._rows < self.max_rows and self.max_wait_s > 0:
                # earlier batches are still finishing: give newcomers the window to join
                # (a future and a timer: cheaper than wait_for, which makes a task)
                self._full = full = loop.create_future()
                timer = loop.call_later(self.max_wait_s, _wake, full)
                try:
                    await full
                finally:
                    timer.cancel()
                    self._full = None
            self._start(self._take())
            await asyncio.sleep(0)  # let the batch start (its model call) before the next

    def _start(self, batch: list[tuple[T, int, asyncio.Future[R]]], *, queued: bool = True) -> None:
        """Run ``batch`` as a task; ``queued`` batches count as in flight, which opens the
        joining window for the next (one running alone does not)."""
        task = asyncio.get_running_loop().create_task(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if queued:
            self._inflight += 1
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight -= 1

    def _take(self) -> list[tuple[T, int, asyncio.Future[R]]]:
        taken, rows = 0, 0
        for _, n, _ in self._queue:
            if taken and rows + n > self.max_rows:
                break
            taken, rows = taken + 1, rows + n
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        self._rows -= rows
        return batch

    async def _run_batch(self, batch: list[tuple[T, int, asyncio.Future[R]]]) -> None:
        live = [(item, fut) for item, _, fut in batch if not fut.cancelled()]
        if not live:
            return
        self.batches += 1
        try:
            results = await self._run([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch returned {len(results)} results for {len(live)}")
        except Exception as exc:
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(result)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
