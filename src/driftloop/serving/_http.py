"""The HTTP/1.1 connection ``driftloop serve`` runs: uvicorn's httptools protocol with the
limits a server facing hostile clients needs and uvicorn lacks.

uvicorn bounds neither the size of a request head nor the time it may take to arrive, and
keeps every accepted connection: thousands of idle or half-sent connections exhaust the
process's file descriptors, and a 200 MB header is buffered whole. This protocol, with the
``[serving]`` settings of the app it serves (defaults for another app):

- a head (request line and headers) larger than ``max_header_bytes`` is answered 431 and
  the connection closed, as soon as that many bytes arrived without the head ending;
- a head must arrive within ``header_timeout_s`` of the connection opening (or of the
  request's first byte on a kept-alive connection), a body within ``body_timeout_s``
  after its head: else 408 (a connection that sent nothing is closed silently);
- an idle kept-alive connection is closed after ``keep_alive_s``;
- past ``max_connections`` open connections, a new one closes the connection idle the
  longest (waiting for a request, including one sending its head slowly), so a flood
  cannot lock clients out; when every connection has a request in progress, the new one
  is answered 503.

Each refusal is a JSON error body, counted in ``driftloop_requests{endpoint="connection"}``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from driftloop.core.config import ServingConfig
from driftloop.serving._fastpath import ServingApp

__all__ = ["GuardedHttpProtocol"]

_ENDPOINT = "connection"  # the metrics label of responses the protocol itself sends


_SWEEP_S = 0.25  # how often deadlines are checked: their precision


class _Connections:
    """One process's connections waiting for a request, the longest idle first, those
    closed to make room that have not gone yet, and the sweep that fires deadlines.

    A deadline is a time on the connection, checked by one task every ``_SWEEP_S``: two
    timers per request (head, then body) cost more than the rest of the guard."""

    def __init__(self) -> None:
        self.idle: dict[GuardedHttpProtocol, None] = {}
        self.closing: set[GuardedHttpProtocol] = set()
        self.armed: set[GuardedHttpProtocol] = set()
        self.sweeper: asyncio.Task[None] | None = None

    def watch(self, protocol: GuardedHttpProtocol) -> None:
        self.armed.add(protocol)
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = protocol.loop.create_task(self._sweep(protocol.loop))

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        while self.armed:
            await asyncio.sleep(_SWEEP_S)
            self.fire(loop.time())

    def fire(self, now: float) -> None:
        """Call the handler of every deadline passed at ``now``."""
        for protocol in [p for p in self.armed if p.deadline <= now]:
            self.armed.discard(protocol)
            expire, protocol.expire = protocol.expire, None
            if expire is not None:
                expire()


_TABLES: weakref.WeakKeyDictionary[ServerState, _Connections] = weakref.WeakKeyDictionary()


class _OncePerMinute(logging.Filter):
    """Lets one record of each message through per minute (a flood of malformed requests
    would write a warning each), saying how many were held back."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self.seen: dict[str, list[float]] = {}  # message -> [let through at, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        now, key = self.clock(), str(record.msg)[:200]
        seen = self.seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} ({int(seen[1])} more like it not logged)"
        if len(self.seen) >= 256:
            self.seen.clear()
        self.seen[key] = [now, 0]
        return True


_LOG = logging.getLogger("uvicorn.error.driftloop")  # uvicorn's handlers, rate-limited
_LOG.addFilter(_OncePerMinute())
_LOG.setLevel(logging.INFO)  # not uvicorn's per-connection trace lines


def _serving_app(app: Any) -> ServingApp | None:
    """The driftloop app under uvicorn's middleware (each keeps the next as ``app``)."""
    for _ in range(8):
        if isinstance(app, ServingApp):
            return app
        app = getattr(app, "app", None)
    return None


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size, head and body deadlines, keep-alive
    and connection limits (module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = _LOG  # its warnings (malformed requests) and failed requests' errors
        self.serving = _serving_app(self.app)
        self.limits = self.serving.server.settings if self.serving else ServingConfig()
        self.timeout_keep_alive = self.limits.keep_alive_s  # type: ignore[assignment]
        self.table = _TABLES.setdefault(server_state, _Connections())
        self.head_bytes = 0  # bytes of the current head received so far
        self.in_head = True  # waiting for (the rest of) a request head
        self.refused = False
        self.deadline = math.inf  # when ``expire`` is called (loop time)
        self.expire: Callable[[], None] | None = None

    # -- connection ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = self.table
        if len(self.connections) - len(table.closing) > self.limits.max_connections:
            victim = next(iter(table.idle), None)
            if victim is None:
                self.refuse(503, "overloaded", "Every connection has a request in progress.")
                return
            victim.close_quietly()
        table.idle[self] = None
        self.arm(self.limits.header_timeout_s, self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.table.idle.pop(self, None)
        self.table.closing.discard(self)
        super().connection_lost(exc)

    def close_quietly(self) -> None:
        """Close to make room (the connection had no request in progress)."""
        self.refused = True
        self.disarm()
        self.table.idle.pop(self, None)
        self.table.closing.add(self)
        self.transport.close()

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with a JSON error and close the connection."""
        if self.refused:
            return
        self.refused = True
        self.disarm()
        self.table.idle.pop(self, None)
        body = orjson.dumps({"error": {"code": code, "message": message}})
        head = b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
        if not self.transport.is_closing():
            self.transport.write(STATUS_LINE[status] + head % len(body) + body)
            self.transport.close()
        if self.serving is not None:
            self.serving.server.count(_ENDPOINT, status)

    def send_400_response(self, msg: str) -> None:
        self.refuse(400, "bad-request", "The request is not valid HTTP/1.1.")

    # -- deadlines -----------------------------------------------------------------
    def arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self.deadline = self.loop.time() + seconds
        self.expire = callback
        self.table.watch(self)

    def disarm(self) -> None:
        self.expire = None
        self.deadline = math.inf
        self.table.armed.discard(self)

    def head_timeout(self) -> None:
        if self.head_bytes == 0:  # nothing sent: no request to answer
            self.close_quietly()
            return
        limit = self.limits.header_timeout_s
        self.refuse(408, "request-timeout", f"The request head did not arrive within {limit:g} s "
                    "(serving.header_timeout_s).")  # fmt: skip

    def body_timeout(self) -> None:
        limit = self.limits.body_timeout_s
        self.refuse(408, "request-timeout", f"The request body did not arrive within {limit:g} s "
                    "(serving.body_timeout_s).")  # fmt: skip

    # -- parsing -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if self.in_head and self.head_bytes > self.limits.max_header_bytes:
            self.head_too_large()

    def head_too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self.refuse(431, "headers-too-large", f"The request head exceeds {limit} bytes "
                    "(serving.max_header_bytes).")  # fmt: skip

    def on_message_begin(self) -> None:
        if self.refused:
            return
        super().on_message_begin()
        if self.expire is None:  # the first byte of a request on a kept-alive connection
            self.arm(self.limits.header_timeout_s, self.head_timeout)

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        limit = self.limits.max_header_bytes
        if self.head_bytes > limit and (  # the chunk may hold a body too: measure the head
            len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > limit
        ):
            self.head_too_large()
            return
        self.in_head = False
        self.head_bytes = 0
        self.table.idle.pop(self, None)
        self.arm(self.limits.body_timeout_s, self.body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.disarm()
        self.in_head = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.refused and not self.transport.is_closing() and self.in_head:
            self.table.idle[self] = None  # waits for the next request: the newest idle
