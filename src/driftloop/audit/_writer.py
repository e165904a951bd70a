"""Group commit off the event loop: one writer thread, one transaction per drain.

Callers ``await writer.awrite(records)`` (or ``awrite_batch``); the thread takes every
write queued since its last commit, writes them in one transaction and then wakes the
callers, with one hop back to each event loop per commit. Under load many batches
share one commit; when idle a batch commits at once.

With a ``spool`` folder the writer outlives an audit store that is down or hung:

- a commit that fails because the store did not answer (``OSError``, which
  ``BackendUnavailableError`` is, or ``sqlite3.OperationalError``), or that has not
  finished after ``commit_timeout_s``, goes to a local spool file (fsynced,
  :mod:`driftloop.audit._spool`) and its callers are then answered: their records are
  durable on local disk. A commit stuck in the driver cannot be interrupted: a watchdog
  thread answers its callers from the spool and starts a new writer thread; the stuck
  one exits when the driver returns.
- while the spool holds rows, new commits go to the spool too (the store is not
  tried on the request path), and a replay thread moves rows to the store, oldest
  first, with exponential backoff and jitter between tries (``retry_initial_s``
  doubling to ``retry_max_s``); a row leaves the spool only after the store committed
  it, and the store skips ids it has, so a late commit of a hung transaction, or a
  replay repeated after a crash, stores each prediction once. When the spool is empty
  commits go to the store again.
- spool files left in the folder by a writer that died (``kill -9``) are replayed by
  the next writer started on the folder.

An error of the data itself (the store answered and refused it) still goes to the
callers, as it does without a spool: replaying it could never succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from driftloop.audit._backoff import Backoff
from driftloop.audit._batch import AuditBatch
from driftloop.audit._protocol import AuditLog
from driftloop.audit._record import AuditRecord
from driftloop.audit._spool import AuditSpool, as_records, claim_orphans
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.errors import BackendUnavailableError, InvalidParameterError

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)

_Write = Sequence[AuditRecord] | Sequence[AuditBatch]
_Item = tuple[_Write, asyncio.AbstractEventLoop, asyncio.Future[None]]
_UNAVAILABLE = (OSError, sqlite3.OperationalError)  # the store did not answer: spool


@dataclass(eq=False)
class _Commit:
    """A commit under way in a writer thread, for the watchdog to time."""

    items: list[_Item]
    stop: bool  # its thread took close()'s marker
    started: float
    abandoned: bool = False  # the watchdog answered its callers from the spool


class GroupCommitWriter:
    """Writes audit records from async code; a record is durable when ``awrite`` returns
    (in the log, or with a ``spool`` folder in the log or a local spool file).

    ``degraded`` is True while the last try at the store failed or the spool holds rows,
    ``spooled`` counts the rows waiting in spool files, ``replayed`` the rows moved from
    them to the log so far, ``commits`` the commits made to the log.
    """

    def __init__(
        self,
        log: AuditLog,
        *,
        max_records_per_commit: int = 4096,
        spool: Path | None = None,
        commit_timeout_s: float = 5.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
    ) -> None:
        if commit_timeout_s <= 0 or retry_initial_s <= 0 or retry_max_s < retry_initial_s:
            raise InvalidParameterError(
                "commit_timeout_s and retry_initial_s must be positive and retry_max_s at "
                f"least retry_initial_s, got {commit_timeout_s}, {retry_initial_s}, "
                f"{retry_max_s}."
            )
        self.log = log
        self.max_records_per_commit = max_records_per_commit
        self.spool = spool
        self.commit_timeout_s = commit_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.commits = 0
        self.replayed = 0
        self._failing = False  # the last try at the store failed
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._own: AuditSpool | None = None
        self._orphans: list[AuditSpool] = []
        self._spooling = False  # commits go to the spool: it holds rows of this writer
        self._state = threading.Lock()  # guards _inflight, _spooling, spool counts
        self._inflight: _Commit | None = None
        self._drained = threading.Event()  # close()'s marker taken, what it followed done
        self._stopping = threading.Event()
        self._wake = threading.Event()  # rows to replay, or closing
        self._empty = threading.Event()  # no row waits in a spool
        if spool is not None:
            self._own = AuditSpool.create(spool)
            self._orphans = claim_orphans(spool)  # claims nothing of a live writer
        self._thread = self._start(self._run, "audit-writer")
        self._helpers: list[threading.Thread] = []
        if self._own is not None:
            self._helpers = [
                self._start(self._watch, "audit-watchdog"),
                self._start(self._replay, "audit-replay"),
            ]
            if self._orphans:
                self._wake.set()
        if self.spooled == 0:
            self._empty.set()

    @property
    def spooled(self) -> int:
        """Rows waiting in spool files (this writer's and those it took over)."""
        spools = [s for s in (self._own, *self._orphans) if s is not None]
        return sum(s.pending for s in spools)

    @property
    def degraded(self) -> bool:
        """Whether the last try at the store failed or rows wait in the spool."""
        return self._failing or self.spooled > 0

    def wait_replayed(self, timeout: float | None = None) -> bool:
        """Block until no row waits in a spool (True), or ``timeout`` seconds (False)."""
        return self._empty.wait(timeout)

    async def awrite(self, records: Sequence[AuditRecord]) -> None:
        """Return once ``records`` are durable; raise what the log raised otherwise."""
        await self._await(records)

    async def awrite_batches(self, batches: Sequence[AuditBatch]) -> None:
        """Return once every row of ``batches`` is durable (as :meth:`awrite`)."""
        await self._await(batches)

    async def _await(self, write: _Write) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((write, loop, future))
        await future

    def close(self) -> None:
        """Commit what is queued, then stop the threads (the log stays open). With a
        spool, rows the log did not take stay in the spool file for the next writer."""
        self._queue.put(None)
        if self._own is None:
            self._thread.join()
            return
        self._drained.wait()  # a stuck commit is answered by the watchdog meanwhile
        self._stopping.set()
        self._wake.set()
        for helper in self._helpers:  # a replay stuck in the driver is left behind
            helper.join(timeout=self.commit_timeout_s)
        with self._state:
            spools = [s for s in (self._own, *self._orphans) if s is not None]
        for spool in spools:
            spool.close()

    # -- the writer thread ------------------------------------------------------------
    @staticmethod
    def _start(target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._drained.set()
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
            if not self._commit(items, stop):
                return  # abandoned: the watchdog answered and started another thread
            if stop:
                self._drained.set()
                return

    def _commit(self, items: list[_Item], stop: bool) -> bool:
        """Commit ``items`` and answer their callers; False if this thread was abandoned
        while the log held it (then it must exit: another thread has taken over)."""
        if self._own is None:
            _answer(items, self._write(items))
            return True
        if self._spooling:
            self._to_spool(items, None)
            return True
        commit = self._inflight = _Commit(items, stop, time.monotonic())
        error = self._write(items)
        with self._state:
            if commit.abandoned:
                return False
            self._inflight = None
        if error is None:
            self._failing = False
            _answer(items, None)
        elif isinstance(error, _UNAVAILABLE):
            self._fail(error)
            self._to_spool(items, error)
        else:
            _answer(items, error)
        return True

    def _write(self, items: list[_Item]) -> Exception | None:
        try:
            batches = [b for w, _, _ in items for b in w if isinstance(b, AuditBatch)]
            records = [r for w, _, _ in items for r in w if isinstance(r, AuditRecord)]
            if isinstance(self.log, SqlAuditLog):
                self.log.write_batches(batches, records)
            else:
                self.log.write(records + [r for b in batches for r in b.records()])
            self.commits += 1
        except Exception as exc:  # handed to every waiting caller, or spooled
            return exc
        return None

    def _fail(self, error: BaseException) -> None:
        if not self._failing:
            log.warning("Audit store unavailable; spooling to %s: %s", self.spool, error)
        self._failing = True

    def _to_spool(self, items: list[_Item], error: Exception | None) -> None:
        """Store ``items`` in this writer's spool, then answer their callers: success if
        the spool took them, else the store's error (or the spool's)."""
        assert self._own is not None
        batches = [b for w, _, _ in items for b in w if isinstance(b, AuditBatch)]
        records = [r for w, _, _ in items for r in w if isinstance(r, AuditRecord)]
        try:
            with self._state:  # the replay thread leaves spooling mode under this lock
                self._own.append(batches, records)
                self._spooling = True
                self._empty.clear()
        except Exception as exc:
            log.exception("Audit spool %s refused rows.", self._own.path)
            _answer(items, error or exc)
            return
        self._wake.set()
        _answer(items, None)

    # -- the watchdog ---------------------------------------------------------------
    def _watch(self) -> None:
        """Answer from the spool the callers of a commit that overran its deadline."""
        every = min(max(self.commit_timeout_s / 10, 0.001), 0.5)
        while not self._stopping.wait(every):
            with self._state:
                commit = self._inflight
                if commit is None or time.monotonic() - commit.started < self.commit_timeout_s:
                    continue
                commit.abandoned = True
                self._inflight = None
            error = BackendUnavailableError(
                f"The audit log did not commit within {self.commit_timeout_s:g} s."
            )
            self._fail(error)
            self._to_spool(commit.items, error)
            if commit.stop:
                self._drained.set()
            else:
                self._thread = self._start(self._run, "audit-writer")

    # -- the replay thread ----------------------------------------------------------
    def _replay(self) -> None:
        """Move spooled rows to the log, with backoff between failed tries."""
        backoff = Backoff(self.retry_initial_s, self.retry_max_s)
        while not self._stopping.is_set():
            if self.spooled == 0 and not self._orphans:
                self._wake.wait()
                self._wake.clear()
                continue
            # rows just spooled mean the store just failed: wait before the first try
            if self._stopping.wait(backoff.next()):
                return
            try:
                self._move_all()
            except Exception as exc:
                self._fail(exc)
                continue
            backoff.reset()

    def _move_all(self) -> None:
        for spool in list(self._orphans):
            self._move(spool)
            with self._state:
                self._orphans.remove(spool)
            spool.close()
        assert self._own is not None
        self._move(self._own)
        with self._state:
            if self._own.count() == 0:
                self._own.pending = 0
                self._spooling = False
                self._failing = False
                self._empty.set()
                log.warning("Audit store back; spooled rows replayed (%d).", self.replayed)

    def _move(self, spool: AuditSpool) -> None:
        while not self._stopping.is_set():
            rows, entities = spool.oldest(self.max_records_per_commit)
            if not rows:
                return
            if isinstance(self.log, SqlAuditLog):
                self.log.insert_rows(rows, entities)
            else:
                self.log.write(as_records(rows))
            spool.remove([r[0] for r in rows])
            with self._state:  # appends count under this lock too: exact
                spool.pending = spool.count()
            self.replayed += len(rows)


def _rows(write: _Write) -> int:
    return sum(len(w) if isinstance(w, AuditBatch) else 1 for w in write)


def _answer(items: list[_Item], error: BaseException | None) -> None:
    waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, future in items:
        waiting.setdefault(loop, []).append(future)
    for loop, futures in waiting.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(_settle, futures, error)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
