from __future__ import annotations

from collections.abc import Iterator

import pytest

from live_server import LiveServer, live_server


@pytest.fixture(scope="session", name="live_server")
def live_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One ``driftloop serve`` for the session's hostile clients (tests/live_server.py)."""
    with live_server(tmp_path_factory.mktemp("live")) as server:
        yield server
