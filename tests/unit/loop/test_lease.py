"""One leader per model: the lease is taken once, renewed by its holder, taken over only
after it expired, and a controller that lost it changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from driftloop.core.config import LoopPolicy
from driftloop.loop import Lease, LeaseLostError, LoopController, history, request_retrain
from loop_helpers import (
    NO_SHADOW,
    Clock,
    RegisteringRetrainer,
    ScriptedAnalysis,
    registry_with_champion,
    rollout,
)


def test_the_lease_is_held_by_one_renewed_by_it_and_taken_over_once_expired(
    tmp_path: Path,
) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    a = Lease(registry, "a", timedelta(seconds=30), clock=clock)
    b = Lease(registry, "b", timedelta(seconds=30), clock=clock)
    assert (a.acquire("loans"), b.acquire("loans")) == (True, False)
    clock.advance(seconds=20)
    assert (a.acquire("loans"), b.acquire("loans")) == (True, False)  # renewed at 20 s
    clock.advance(seconds=29)
    assert b.acquire("loans") is False
    clock.advance(seconds=1)
    assert (b.acquire("loans"), a.acquire("loans")) == (True, False)
    assert a.current("loans") == "b"
    b.give_up("loans")
    assert a.current("loans") is None
    assert a.acquire("loans") is True


def test_a_controller_that_lost_the_lease_changes_nothing(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "go", who="ana", at=clock())
    slow = rollout(registry, NO_SHADOW, clock, holder="slow")
    assert slow.advance().action == "retrain"
    clock.advance(seconds=31)  # its lease expired (a long pause) and another took it
    assert Lease(registry, "fast", timedelta(seconds=30), clock=clock).acquire("loans")
    with pytest.raises(LeaseLostError, match="held by 'fast'"):
        slow.advance()
    assert [d.action for d in history(registry.engine, "loans")] == ["request", "retrain"]
    assert registry.aliases("loans") == {"champion": 1}


def test_a_controller_skips_the_models_another_one_leads(tmp_path: Path) -> None:
    registry = registry_with_champion(tmp_path)
    clock = Clock()
    request_retrain(registry, "loans", "go", who="ana", at=clock())
    Lease(registry, "other", timedelta(seconds=30), clock=clock).acquire("loans")
    controller = LoopController(
        registry,
        {"loans": LoopPolicy.model_validate(NO_SHADOW)},
        analysis=ScriptedAnalysis(),
        retrainer=RegisteringRetrainer(registry),
        holder="me",
        lease_ttl=timedelta(seconds=30),
        clock=clock,
    )
    assert controller.run_once() == []
    clock.advance(seconds=31)
    assert [d.action for d in controller.run_once()][-1] == "promote"
    state, leader = controller.status("loans")
    assert (state.state, leader) == ("promoted", "me")
    controller.close()
    assert Lease(registry, "x", timedelta(seconds=1), clock=clock).current("loans") is None
