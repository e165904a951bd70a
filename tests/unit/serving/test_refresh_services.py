"""Following aliases: a service whose alias went away with the policy routing to it (a
rollout that ended) reads the policies again before it is called broken."""

from __future__ import annotations

import asyncio
import logging

import pytest

from driftloop.serving._traffic import refresh_services


class Routed:
    """Routes to ``challenger`` until the policies are read again."""

    def __init__(self, *, ended: bool) -> None:
        self.routes_challenger = True
        self.ended = ended  # the stored policy no longer routes to the challenger
        self.refreshed = 0

    async def refresh(self) -> bool:
        if self.routes_challenger:
            raise LookupError("Model 'm' has no alias 'challenger'.")
        self.refreshed += 1
        return False

    async def sync(self) -> None:
        if self.ended:
            self.routes_challenger = False


def test_an_alias_removed_with_its_policy_is_followed_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Routed(ended=True)
    with caplog.at_level(logging.WARNING):
        asyncio.run(refresh_services({"m": service}, service.sync, "model"))
    assert service.refreshed == 1
    assert not caplog.records


def test_an_alias_still_routed_to_but_gone_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    service, other = Routed(ended=False), Routed(ended=True)
    other.routes_challenger = False
    with caplog.at_level(logging.WARNING):
        asyncio.run(refresh_services({"m": service, "n": other}, service.sync, "model"))
    assert [r.getMessage() for r in caplog.records] == [
        "Could not refresh model m: Model 'm' has no alias 'challenger'."
    ]
    assert other.refreshed == 1  # the others are still followed
