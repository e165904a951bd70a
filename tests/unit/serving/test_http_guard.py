"""The connection guard of ``driftloop serve`` (GuardedHttpProtocol), driven with fake
transports: no sockets, no sleeps (the deadlines' callbacks are called directly)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from driftloop.core.config import ServingConfig
from driftloop.serving import GuardedHttpProtocol, InMemoryModelSource, create_app


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@pytest.fixture
def connect() -> Iterator[Any]:
    settings = ServingConfig(max_connections=2, max_header_bytes=1_024, header_timeout_s=3)
    app = create_app([], InMemoryModelSource(), settings=settings, refresh_s=0)
    config = Config(app=app, lifespan="off", log_level="warning")
    loop = asyncio.new_event_loop()
    state = ServerState()

    def open_one() -> tuple[GuardedHttpProtocol, FakeTransport]:
        protocol = GuardedHttpProtocol(config, state, {}, _loop=loop)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

    yield open_one
    pending = asyncio.all_tasks(loop)  # requests whose heads arrived: never run here

    async def cancel() -> None:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    loop.run_until_complete(cancel())
    loop.close()


def test_past_the_limit_the_longest_idle_connection_makes_room(connect: Any) -> None:
    _, oldest = connect()
    _, newer = connect()
    _, newest = connect()
    assert oldest.closed
    assert oldest.written == b""  # it had sent nothing: closed without an answer
    assert not newer.closed
    assert not newest.closed


def test_when_every_connection_is_busy_a_new_one_gets_503(connect: Any) -> None:
    for _ in range(2):
        protocol, _ = connect()
        head = b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\n"
        protocol.data_received(head)  # a request in progress: its body is awaited
    _, refused = connect()
    assert refused.closed
    assert refused.written.startswith(b"HTTP/1.1 503 ")
    assert b'"code":"overloaded"' in refused.written


def test_a_head_past_the_limit_is_431_before_it_ends(connect: Any) -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2_000)  # no end of head
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert b"serving.max_header_bytes" in transport.written
    assert transport.closed
    protocol.data_received(b"a" * 100_000)  # ignored, not buffered
    assert transport.written.count(b"HTTP/1.1") == 1


def test_a_head_that_misses_its_deadline_is_408(connect: Any) -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert protocol.expire is not None  # armed at the connection's start
    protocol.table.fire(protocol.deadline - 0.01)  # the sweep, just before the deadline
    assert transport.written == b""
    protocol.table.fire(protocol.deadline)  # the sweep once header_timeout_s passed
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert b"3 s (serving.header_timeout_s)" in transport.written
    assert protocol not in protocol.table.armed


def test_a_complete_request_disarms_its_deadlines(connect: Any) -> None:
    protocol, _ = connect()
    protocol.data_received(b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n")
    assert protocol.expire == protocol.body_timeout  # the head came: now the body's
    protocol.data_received(b"{}")
    assert protocol.expire is None
    assert protocol not in protocol.table.armed


def test_malformed_http_is_a_json_400(connect: Any) -> None:
    protocol, transport = connect()
    protocol.data_received(b"NOT HTTP AT ALL\x00\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert transport.written.endswith(b'"message":"The request is not valid HTTP/1.1."}}')
