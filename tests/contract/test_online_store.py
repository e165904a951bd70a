"""Every online store backend passes the same contract battery."""

from __future__ import annotations

import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_online_store_battery import CHECKS

from driftloop.core.errors import BackendUnavailableError
from driftloop.features import OnlineStore, RedisOnlineStore, SqliteOnlineStore


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "redis"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], OnlineStore]:
    if request.param == "sqlite-file":
        return lambda: SqliteOnlineStore(tmp_path / f"{uuid.uuid4().hex}.db")
    if request.param == "sqlite-memory":
        return lambda: SqliteOnlineStore(":memory:")
    url = request.getfixturevalue("redis_url")
    return lambda: RedisOnlineStore(url, prefix=f"test:{uuid.uuid4().hex}:")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_online_store_contract(factory: Callable[[], OnlineStore], check: Callable) -> None:
    store = factory()
    try:
        check(store)
    finally:
        store.close()


def test_redis_down_raises_backend_unavailable() -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisOnlineStore(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    with pytest.raises(BackendUnavailableError, match="unavailable"):
        store.read(["v:1"])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_hung_redis_times_out_instead_of_hanging(silent_server: int) -> None:
    store = RedisOnlineStore(f"redis://127.0.0.1:{silent_server}/0", timeout_s=0.2)
    with pytest.raises(BackendUnavailableError):
        store.read(["v:1"])
