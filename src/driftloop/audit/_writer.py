"""Group commit off the event loop: one writer thread, one transaction per drain.

Callers ``await writer.awrite(records)``; the thread takes every batch queued since its
last commit, writes them in one transaction and then wakes each caller. Under load many
batches share one commit (and one fsync); when idle a batch commits at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence

from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import AuditRecord

__all__ = ["GroupCommitWriter"]

_Item = tuple[Sequence[AuditRecord], asyncio.AbstractEventLoop, asyncio.Future[None]]


class GroupCommitWriter:
    """Writes audit records from async code; a record is durable when ``awrite`` returns."""

    def __init__(self, log: AuditLog, *, max_records_per_commit: int = 4096) -> None:
        self.log = log
        self.max_records_per_commit = max_records_per_commit
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        self.commits = 0

    async def awrite(self, records: Sequence[AuditRecord]) -> None:
        """Return once ``records`` are committed; raise what the log raised otherwise."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((records, loop, future))
        await future

    def close(self) -> None:
        """Commit what is queued, then stop the thread (the log stays open)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            size = len(first[0])
            stop = False
            while size < self.max_records_per_commit:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
                size += len(nxt[0])
            self._commit(items)
            if stop:
                return

    def _commit(self, items: list[_Item]) -> None:
        records = [record for batch, _, _ in items for record in batch]
        error: BaseException | None = None
        try:
            self.log.write(records)
            self.commits += 1
        except Exception as exc:  # handed to every waiting caller
            error = exc
        for _, loop, future in items:
            loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
