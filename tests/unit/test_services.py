from __future__ import annotations

import pytest

from services import port_open, unavailable


def test_unreachable_service_skips_when_not_required() -> None:
    with pytest.raises(pytest.skip.Exception):
        unavailable("nothing listens", required=False)


def test_unreachable_service_fails_when_required() -> None:
    with pytest.raises(pytest.fail.Exception, match="DRIFTLOOP_REQUIRE_SERVICES"):
        unavailable("nothing listens", required=True)


def test_closed_port_is_reported_closed() -> None:
    assert not port_open("127.0.0.1", 1)
