"""Slowloris, connection floods, endless headers and stalled bodies against a real
``driftloop serve`` (127.0.0.1 only, bounded in count and time) leave a probe client
served and the server's file descriptors and memory bounded.

The server runs with ``header_timeout_s = 2``, ``body_timeout_s = 2``, ``keep_alive_s = 2``,
``max_connections = 100`` and ``max_header_bytes = 8192`` (conftest). Timeouts below are
generous guards for a busy machine, never the assertion.
"""

from __future__ import annotations

import contextlib
import socket
import time

import httpx2
import pytest

from live_server import LiveServer

pytestmark = pytest.mark.reliability

GUARD_S = 20.0  # how long a test waits for the server at most, however busy the machine


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=GUARD_S)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return sock


def closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before closing ``sock`` (None: still open after the guard)."""
    sock.settimeout(GUARD_S)
    got = b""
    try:
        while chunk := sock.recv(65_536):
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return got
    except TimeoutError:
        return None
    return got


def test_slowloris_connections_are_cut_and_clients_are_still_served(
    live_server: LiveServer,
) -> None:
    """300 connections (3x the limit) each dribbling a header line every 0.5 s."""
    before = live_server.count("connection", 408)
    sockets = []
    for _ in range(300):
        sock = connect(live_server)
        sock.sendall(b"POST /v1/models/fraud/predict HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    statuses = []
    for _ in range(8):  # 4 s: twice the head deadline
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.send(b"X-Slow: 1\r\n")
        statuses.append(live_server.probe())
        time.sleep(0.5)
    assert statuses == [200] * 8  # a fresh client is served all along
    ends = [closed_by_server(sock) for sock in sockets]
    for sock in sockets:
        sock.close()
    assert all(end is not None for end in ends)  # the server closed every one of them
    timed_out = [end for end in ends if end]
    assert timed_out  # the ones still open at the deadline were told why
    assert all(b" 408 " in end and b"header_timeout_s" in end for end in timed_out)
    # (>=: a reset may cost a client the bytes of its 408, never the server its count)
    assert live_server.count("connection", 408) - before >= len(timed_out)


def test_a_connection_flood_keeps_descriptors_bounded_and_clients_served(
    live_server: LiveServer,
) -> None:
    """2,000 idle connections (20x the limit) opened as fast as possible and held."""
    baseline = live_server.open_fds()
    sockets = []
    try:
        sockets.extend(connect(live_server) for _ in range(2_000))
        assert live_server.probe() == 200
        assert live_server.open_fds() <= baseline + 100 + 20  # max_connections, some slack
        for sock in sockets[-50:]:  # the newest still work
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65_536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in sockets:
            sock.close()
    assert live_server.probe() == 200


def test_an_endless_header_is_cut_at_the_limit_and_memory_stays_flat(
    live_server: LiveServer,
) -> None:
    """Four headers that never end (200 MB each, were they read) and one complete
    header past the limit."""
    before, rss = live_server.count("connection", 431), live_server.rss_bytes()
    for _ in range(4):
        sock = connect(live_server)
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < 200_000_000:
                sock.sendall(b"a" * 65_536)
                sent += 65_536
        sock.close()
        assert sent < 20_000_000  # refused long before (what socket buffers took aside)
    big = httpx2.get(f"{live_server.base}/healthz", headers={"X-Big": "a" * 20_000}, timeout=10)
    assert big.status_code == 431
    assert big.json()["error"]["code"] == "headers-too-large"
    assert live_server.count("connection", 431) - before >= 1
    assert live_server.rss_bytes() - rss < 30_000_000
    assert live_server.probe() == 200


def test_a_stalled_body_is_408_and_an_idle_keep_alive_connection_is_closed(
    live_server: LiveServer,
) -> None:
    stalled = connect(live_server)
    stalled.sendall(
        b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n{"
    )
    end = closed_by_server(stalled)
    assert end is not None
    assert b" 408 " in end
    assert b"body_timeout_s" in end
    idle = connect(live_server)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    end = closed_by_server(idle)  # the answer, then the close after keep_alive_s
    assert end is not None
    assert end.startswith(b"HTTP/1.1 200")
    silent = connect(live_server)  # connects, never sends a byte
    assert closed_by_server(silent) == b""
    for sock in (stalled, idle, silent):
        sock.close()


def test_a_flood_of_malformed_requests_is_answered_400_json_and_logged_once(
    live_server: LiveServer,
) -> None:
    before = live_server.count("connection", 400)
    for i in range(200):
        sock = connect(live_server)
        sock.sendall(b"GARBAGE %d \x00\x01 HTTP/9\r\n\r\n" % i)
        end = closed_by_server(sock)
        sock.close()
        assert end is not None
        assert end.startswith(b"HTTP/1.1 400")
        assert b'"code":"bad-request"' in end
    assert live_server.count("connection", 400) - before == 200
    assert live_server.log.read_text().count("Invalid HTTP request") == 1  # not 200
    assert live_server.probe() == 200
