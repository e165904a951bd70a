"""The webhook sink against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from driftloop.core import BackendUnavailableError
from driftloop.monitoring import Alert, WebhookAlertSink

pytestmark = pytest.mark.integration


class _Hook(ThreadingHTTPServer):
    fail_first = 0
    received: list[dict[str, object]]


class _Handler(BaseHTTPRequestHandler):
    server: _Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.fail_first > 0:
            self.server.fail_first -= 1
            self.send_response(503)
        else:
            self.server.received.append(json.loads(body))
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[_Hook]:
    server = _Hook(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _alert() -> Alert:
    return Alert(
        7,
        "fraud",
        3,
        "canary",
        "concept-drift",
        "2025-02-05",
        "2025-02-06",
        "ROC AUC dropped",
        ["amount"],
    )


def test_webhook_retries_server_errors_then_delivers_once(hook: _Hook) -> None:
    hook.fail_first = 2
    waits: list[float] = []
    sink = WebhookAlertSink(f"http://127.0.0.1:{hook.server_port}/alerts", sleep=waits.append)
    sink.send(_alert())
    sink.close()
    assert hook.received == [_alert().to_dict()]
    assert len(waits) == 2
    assert waits[1] > waits[0] * 0.5


def test_webhook_gives_up_after_its_attempts(hook: _Hook) -> None:
    hook.fail_first = 10
    waits: list[float] = []
    sink = WebhookAlertSink(
        f"http://127.0.0.1:{hook.server_port}/a", attempts=3, sleep=waits.append
    )
    with pytest.raises(BackendUnavailableError, match="failed 3 times; last: HTTP 503"):
        sink.send(_alert())
    sink.close()
    assert hook.received == []
    assert len(waits) == 2
