"""Traffic routing: sticky keys, split proportions, minimal movement, breaker states."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from driftloop.core.config import BreakerConfig, TrafficPolicy
from driftloop.core.errors import ConfigError
from driftloop.serving._breaker import CircuitBreaker
from driftloop.serving._traffic import Router

KEYS = [f"customer-{i}" for i in range(100_000)]


def sticky(arms: dict[str, float]) -> Router:
    return Router(TrafficPolicy(arms=arms, sticky_key="customer_id"), base="champion")


def chi_square_p(counts: dict[str, int], arms: dict[str, float]) -> float:
    total = sum(arms.values())
    n = sum(counts.values())
    observed = [counts.get(a, 0) for a in arms]
    expected = [n * w / total for w in arms.values()]
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize(
    "arms",
    [
        {"champion": 50, "challenger": 50},
        {"champion": 90, "challenger": 10},
        {"champion": 70, "challenger": 20, "7": 10},
    ],
)
def test_sticky_split_matches_the_weights_over_100000_keys(arms: dict[str, float]) -> None:
    router = sticky(arms)
    picks = [router.pick(k) for k in KEYS]
    counts = {a: picks.count(a) for a in arms}
    # the hash is deterministic: a fixed key set gives a fixed p-value, well above 0.001
    assert chi_square_p(counts, arms) > 0.001, counts
    # the same key always lands on the same arm (and a new router agrees: every worker does)
    again = sticky(arms)
    assert all(again.pick(k) == p for k, p in zip(KEYS[:5_000], picks, strict=False))


def test_keys_without_the_sticky_field_are_split_at_random_by_weight() -> None:
    random.seed(7)
    arms = {"champion": 75, "challenger": 25}
    router = sticky(arms)
    picks = [router.pick(None) for _ in range(100_000)]
    counts = {a: picks.count(a) for a in arms}
    assert chi_square_p(counts, arms) > 0.001, counts


def test_a_weight_change_moves_only_the_keys_it_must() -> None:
    before = sticky({"champion": 90, "challenger": 10})
    after = sticky({"champion": 75, "challenger": 25})
    moved = [(before.pick(k), after.pick(k)) for k in KEYS]
    changed = [m for m in moved if m[0] != m[1]]
    # keys only move onto the arm that gained weight, never off it
    assert all(m == ("champion", "challenger") for m in changed)
    # and about 15% of them (the 15 points that changed hands), not a reshuffle
    share = len(changed) / len(KEYS)
    assert 0.14 < share < 0.16, share


def test_adding_an_arm_takes_keys_from_every_arm_in_proportion() -> None:
    before = sticky({"champion": 50, "challenger": 50})
    after = sticky({"champion": 50, "challenger": 50, "9": 25})
    for key in KEYS[:20_000]:
        old, new = before.pick(key), after.pick(key)
        assert new == old or new == "9"  # nobody swaps between the two old arms


def test_numbers_and_text_of_the_same_key_share_an_arm() -> None:
    router = sticky({"champion": 50, "challenger": 50})
    assert all(router.pick(i) == router.pick(str(i)) for i in range(2_000))
    assert all(router.pick(float(i)) == router.pick(i) for i in range(2_000))
    # the router remembers keys as sent: the first spelling seen must not decide the others
    fresh = sticky({"champion": 50, "challenger": 50})
    assert all(fresh.pick(str(i)) == fresh.pick(float(i)) for i in range(2_000, 4_000))
    assert {router.pick(True), fresh.pick(True)} == {router.pick("true")}  # True == 1, yet "true"
    assert {router.pick(False), fresh.pick(False)} == {router.pick("false")}
    assert router.pick(1) == router.pick("1")
    assert fresh.pick(1) == fresh.pick("1")


def test_without_a_policy_everything_goes_to_the_served_alias() -> None:
    router = Router(None, base="production")
    assert {router.pick(k) for k in KEYS[:100]} == {"production"}
    assert router.targets == ("production",)
    assert not router.shadowed()


def test_shadow_sample_copies_about_that_share() -> None:
    random.seed(3)
    router = Router(TrafficPolicy(shadow="challenger", shadow_sample=0.1), base="champion")
    copied = sum(router.shadowed() for _ in range(100_000))
    assert 9_500 < copied < 10_500
    assert router.targets == ("champion", "challenger")


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ({"champion": -1}, "weight must be a finite number >= 0"),
        ({"champion": 0, "challenger": 0}, "at least one arm needs a weight above 0"),
    ],
)
def test_bad_weights_are_refused_naming_the_arm(arms: dict[str, float], message: str) -> None:
    from driftloop.core.config import load_settings

    with pytest.raises(ConfigError, match=message):
        load_settings(overrides={"serving": {"traffic": {"fraud": {"arms": arms}}}})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_errors_half_opens_and_closes() -> None:
    clock = Clock()
    states: list[str] = []
    config = BreakerConfig(window_s=10, min_requests=10, max_error_rate=0.5, open_s=5, probes=2)
    breaker = CircuitBreaker(config, clock, on_change=states.append)
    for _ in range(9):
        breaker.record(False, 0.001)  # below min_requests: stays closed
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.record(False, 0.001)
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()  # no third while they run
    breaker.record(True, 0.001)
    breaker.record(True, 0.001)
    assert breaker.state == "closed"
    assert states == ["open", "half_open", "closed"]


def test_a_failed_probe_opens_it_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(min_requests=1, open_s=1, probes=1), clock)
    breaker.record(False, 0.0)
    clock.now += 2
    assert breaker.allow()
    breaker.record(False, 0.0)
    assert breaker.state == "open"
    assert breaker.opened == 2


def test_slow_calls_open_it_and_old_errors_age_out() -> None:
    clock = Clock()
    config = BreakerConfig(window_s=10, min_requests=4, slow_ms=100, max_slow_rate=0.5)
    breaker = CircuitBreaker(config, clock)
    breaker.record(False, 0.0)
    breaker.record(False, 0.0)
    clock.now += 11  # those two errors left the window
    for _ in range(3):
        breaker.record(True, 0.0)
    breaker.record(False, 0.0)
    assert breaker.state == "closed"  # 1 error in 4
    for _ in range(3):
        breaker.record(True, 0.5)
    assert breaker.state == "closed"  # 3 slow calls in 7
    breaker.record(True, 0.5)
    assert breaker.state == "open"  # 4 slow calls in 8: half of them


def test_a_cancelled_probe_frees_its_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(min_requests=1, open_s=1, probes=1), clock)
    breaker.record(False, 0.0)
    clock.now += 2
    assert breaker.allow()
    assert not breaker.allow()
    breaker.cancel()
    assert breaker.allow()
