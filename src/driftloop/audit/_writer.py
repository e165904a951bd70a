"""Group commit off the event loop: one writer thread, one transaction per drain.

Callers ``await writer.awrite(records)`` (or ``awrite_batch``); the thread takes every
write queued since its last commit, writes them in one transaction and then wakes the
callers, with one hop back to each event loop per commit. Under load many batches
share one commit; when idle a batch commits at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence

from driftloop.audit._batch import AuditBatch
from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import AuditRecord
from driftloop.audit._sql import SqlAuditLog

__all__ = ["GroupCommitWriter"]

_Write = Sequence[AuditRecord] | Sequence[AuditBatch]
_Item = tuple[_Write, asyncio.AbstractEventLoop, asyncio.Future[None]]


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
        await self._await(records)

    async def awrite_batches(self, batches: Sequence[AuditBatch]) -> None:
        """Return once every row of ``batches`` is committed (as :meth:`awrite`)."""
        await self._await(batches)

    async def _await(self, write: _Write) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((write, loop, future))
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
            size = _rows(first[0])
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
                size += _rows(nxt[0])
            self._commit(items)
            if stop:
                return

    def _commit(self, items: list[_Item]) -> None:
        error: BaseException | None = None
        try:
            batches = [b for w, _, _ in items for b in w if isinstance(b, AuditBatch)]
            records = [r for w, _, _ in items for r in w if isinstance(r, AuditRecord)]
            if isinstance(self.log, SqlAuditLog):
                self.log.write_batches(batches, records)
            else:
                self.log.write(records + [r for b in batches for r in b.records()])
            self.commits += 1
        except Exception as exc:  # handed to every waiting caller
            error = exc
        waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, loop, future in items:
            waiting.setdefault(loop, []).append(future)
        for loop, futures in waiting.items():
            loop.call_soon_threadsafe(_settle, futures, error)


def _rows(write: _Write) -> int:
    return sum(len(w) if isinstance(w, AuditBatch) else 1 for w in write)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
