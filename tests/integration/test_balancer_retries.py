"""deploy/haproxy/haproxy.cfg sends a request to a second server only when sending it twice
is safe: a server that takes a request and dies without answering gets a predict without
an Idempotency-Key once (the client sees the failure), while a keyed predict or a GET is
answered by the other server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest

from balancer import Balancer, haproxy_binary

pytestmark = pytest.mark.integration


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A health check that hangs up before its answer is written is no error here."""


class Backend:
    """A stand-in server that is ready (``/readyz`` 200) and either answers every request
    or takes it and closes the connection without a word (as one killed mid-request)."""

    def __init__(self, answers: bool) -> None:
        self.seen: list[tuple[str, str]] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                if self.path == "/readyz":
                    self._answer(b'{"ready": true}')
                    return
                backend.seen.append((self.command, self.path))
                if answers:
                    self._answer(b'{"ok": true}')
                else:
                    self.close_connection = True  # nothing written: an empty response

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dying_and_healthy(tmp_path: Path) -> Iterator[tuple[Balancer, Backend, Backend]]:
    haproxy_binary()
    dying, healthy = Backend(answers=False), Backend(answers=True)
    balancer = Balancer(tmp_path, [dying.address, healthy.address])
    try:
        balancer.start()
        balancer.wait_for({"s1": "UP", "s2": "UP"})
        yield balancer, dying, healthy
    finally:
        balancer.stop()
        dying.close()
        healthy.close()


def _send(url: str, method: str, headers: dict[str, str] | None = None) -> int:
    """One request on a new connection; its status (0: the connection closed unanswered)."""
    try:
        with httpx2.Client(base_url=url, timeout=30) as client:
            if method == "GET":
                return client.get("/v1/models", headers=headers).status_code
            body = {"instances": [{"amount": 1.0}]}
            return client.post("/v1/models/fraud/predict", json=body, headers=headers).status_code
    except httpx2.TransportError:
        return 0


def test_a_predict_without_a_key_is_never_sent_to_a_second_server(
    dying_and_healthy: tuple[Balancer, Backend, Backend],
) -> None:
    balancer, dying, healthy = dying_and_healthy
    statuses = [_send(balancer.url, "POST") for _ in range(8)]
    # round robin: some went to the dying server, which took them and said nothing; the
    # client saw each of those fail, and none was sent on to the healthy one
    assert dying.seen, "round robin never chose the dying server"
    assert 8 - statuses.count(200) == len(dying.seen)
    assert statuses.count(200) == len(healthy.seen)


def test_a_keyed_predict_and_a_get_are_answered_by_the_other_server(
    dying_and_healthy: tuple[Balancer, Backend, Backend],
) -> None:
    balancer, dying, healthy = dying_and_healthy
    keyed = [_send(balancer.url, "POST", {"Idempotency-Key": f"k{i}"}) for i in range(6)]
    reads = [_send(balancer.url, "GET") for _ in range(6)]
    assert keyed == [200] * 6
    assert reads == [200] * 6
    assert dying.seen, "the dying server was never tried: nothing was retried"
    assert len(healthy.seen) == 12
