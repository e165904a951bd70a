"""The always-valid sequential test keeps its promise under continuous peeking: no more
false alarms than alpha when the arms are alike, and a real difference is found."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftloop.core.errors import InvalidParameterError
from driftloop.stats import sequential_means, sequential_paired, sequential_proportions

RUNS = 300


@pytest.mark.parametrize("rate", [0.5, 0.2, 0.03])
def test_alike_proportions_raise_few_false_alarms_when_peeking_after_every_row(
    rate: float,
) -> None:
    """Every prefix of the merged stream is evaluated (a peek after each row), with a 5%
    canary's uneven arms: the always-valid p-value still falls under alpha in at most
    alpha of the runs."""
    rng = np.random.default_rng(13)
    alarms = 0
    for _ in range(RUNS):
        champion, challenger = rng.random(1_900) < rate, rng.random(300) < rate
        test = sequential_proportions(
            champion,
            challenger,
            champion_order=rng.random(1_900),
            challenger_order=rng.random(300),
        )
        alarms += test.p_value < 0.05
    assert alarms / RUNS <= 0.05


@pytest.mark.parametrize("draw", ["normal", "exponential", "lognormal"])
def test_alike_means_raise_few_false_alarms_when_peeking_after_every_row(draw: str) -> None:
    rng = np.random.default_rng(17)
    sample = {
        "normal": lambda n: rng.normal(3.0, 2.0, n),
        "exponential": lambda n: rng.exponential(1.0, n),  # absolute errors are skewed
        "lognormal": lambda n: rng.lognormal(0.0, 1.0, n),
    }[draw]
    alarms = sum(sequential_means(sample(800), sample(800)).p_value < 0.05 for _ in range(RUNS))
    assert alarms / RUNS <= 0.05


@pytest.mark.parametrize("draw", ["squared", "lognormal"])
def test_a_small_canary_of_skewed_errors_raises_few_false_alarms(draw: str) -> None:
    """A 5% canary's squared errors: few rows of a skewed metric in one arm, many in the
    other; a small arm's own variance alone, or the pooled one alone, let false alarms
    run to 10-35% here."""
    rng = np.random.default_rng(23)
    sample = {
        "squared": lambda n: rng.normal(0.0, 1.0, n) ** 2,
        "lognormal": lambda n: rng.lognormal(0.0, 2.0, n),
    }[draw]
    alarms = 0
    for _ in range(RUNS):
        test = sequential_means(
            sample(3_000),
            sample(150),
            higher_is_better=False,
            champion_order=rng.random(3_000),
            challenger_order=rng.random(150),
        )
        alarms += test.p_value < 0.05
    assert alarms / RUNS <= 0.05


def test_a_challenger_right_less_often_is_found_worse_with_enough_rows() -> None:
    rng = np.random.default_rng(3)
    champion, challenger = rng.random(4_000) < 0.85, rng.random(4_000) < 0.5
    few = sequential_proportions(champion[:10], challenger[:10])
    assert few.decision == "undecided"  # fewer than min_rows per arm: nothing is claimed
    test = sequential_proportions(champion, challenger, margin=0.02)
    assert test.decision == "challenger_worse"
    assert test.upper < 0
    assert test.p_value < 1e-6
    assert test.lower <= test.difference <= test.upper


def test_a_larger_error_is_worse_when_lower_is_better() -> None:
    rng = np.random.default_rng(5)
    champion, challenger = rng.exponential(1.0, 2_000), rng.exponential(1.3, 2_000)
    worse = sequential_means(champion, challenger, higher_is_better=False, margin=0.05)
    assert worse.decision == "challenger_worse"
    # the same numbers read as a score where higher is better: the challenger is better
    better = sequential_means(champion, challenger, higher_is_better=True, margin=0.05)
    assert better.decision == "challenger_not_worse"


def test_an_equal_challenger_is_not_worse_within_the_margin_and_not_before() -> None:
    rng = np.random.default_rng(11)
    champion, challenger = rng.random(20_000) < 0.9, rng.random(20_000) < 0.9
    assert sequential_proportions(champion[:50], challenger[:50], margin=0.02).decision == (
        "undecided"
    )
    assert sequential_proportions(champion, challenger, margin=0.02).decision == (
        "challenger_not_worse"
    )


def test_arms_without_any_error_are_not_worse_and_one_that_always_fails_is() -> None:
    none = np.zeros(500)
    quiet = sequential_proportions(none, none, higher_is_better=False, margin=0.01)
    assert quiet.decision == "challenger_not_worse"
    assert quiet.p_value == 1.0
    failing = sequential_proportions(none, np.ones(30), higher_is_better=False)
    assert failing.decision == "challenger_worse"


def test_unknown_values_are_left_out_and_the_result_is_json_ready() -> None:
    rng = np.random.default_rng(2)
    champion = np.where(rng.random(300) < 0.3, np.nan, rng.random(300) < 0.8)
    test = sequential_proportions(champion, [True] * 5)
    assert test.n_champion == int((~np.isnan(champion)).sum())
    data = json.loads(json.dumps(test.to_dict()))
    assert data["lower"] is None
    assert data["decision"] == "undecided"


def test_arrival_times_decide_how_the_arms_interleave() -> None:
    """The same outcomes in both arms, right first and wrong later; but the challenger's
    were served in the reverse order. Merged by time, the early moments (one arm always
    right, the other always wrong) are seen, not only the equal totals."""
    outcomes = np.concatenate([np.ones(200), np.zeros(200)])
    stamps = np.datetime64("2026-01-01T00:00:00") + np.arange(400).astype("timedelta64[s]")
    in_order = sequential_proportions(outcomes, outcomes)
    assert in_order.p_value == 1.0
    by_time = sequential_proportions(
        outcomes, outcomes, champion_order=stamps, challenger_order=stamps[::-1]
    )
    assert by_time.difference == 0.0
    assert by_time.p_value < 0.05


@pytest.mark.parametrize(("rate", "redrawn"), [(0.8, 0.0), (0.8, 0.01), (0.97, 0.1), (0.8, 1.0)])
def test_paired_outcomes_of_equal_models_raise_few_false_alarms(
    rate: float, redrawn: float
) -> None:
    """A shadow and its primary on the same rows: the challenger's outcome is the
    champion's except on a share ``redrawn`` of rows, drawn afresh there (equal accuracy,
    from identical models to independent ones), peeking after every row (1,000 runs:
    independent outcomes alarm about 3.6% of the time, and 300 runs could stray)."""
    rng = np.random.default_rng(29)
    alarms, runs = 0, 1_000
    for _ in range(runs):
        champion = (rng.random(1_000) < rate).astype(float)
        fresh = (rng.random(1_000) < rate).astype(float)
        challenger = np.where(rng.random(1_000) < redrawn, fresh, champion)
        alarms += sequential_paired(champion, challenger).p_value < 0.05
    assert alarms / runs <= 0.05


@pytest.mark.parametrize("noise", [0.01, 0.3, 1.0])
def test_paired_errors_of_equal_models_raise_few_false_alarms(noise: float) -> None:
    """Squared errors sharing each row's difficulty, plus each model's own noise (1,000
    runs: with independent noise the rate is about 2.5%, and 300 runs could stray)."""
    rng = np.random.default_rng(31)
    alarms, runs = 0, 1_000
    for _ in range(runs):
        shared = rng.normal(0.0, 1.0, 1_000) ** 2
        champion = shared + noise * rng.normal(0.0, 1.0, 1_000) ** 2
        challenger = shared + noise * rng.normal(0.0, 1.0, 1_000) ** 2
        alarms += sequential_paired(champion, challenger, higher_is_better=False).p_value < 0.05
    assert alarms / runs <= 0.05


def test_pairs_decide_with_far_fewer_rows_than_two_samples() -> None:
    """The same model twice is within a 4-point margin after 50 pairs (two independent
    samples need about 2,000 rows each); 5% of answers flipped (3 points of accuracy
    lost) is found worse."""
    rng = np.random.default_rng(37)
    champion = (rng.random(3_000) < 0.8).astype(float)
    assert sequential_paired(champion[:50], champion[:50], margin=0.04).decision == (
        "challenger_not_worse"
    )
    assert sequential_proportions(champion[:50], champion[:50], margin=0.04).decision == (
        "undecided"
    )
    flipped = np.where(rng.random(3_000) < 0.05, 1.0 - champion, champion)
    assert sequential_paired(champion, flipped, margin=0.04).decision == "challenger_worse"
    unknown = np.where(rng.random(3_000) < 0.5, np.nan, flipped)  # labels not all in
    assert sequential_paired(champion, unknown).n_challenger < 2_000


def test_a_paired_test_needs_one_value_per_row_on_each_side() -> None:
    with pytest.raises(InvalidParameterError, match="one champion and one challenger"):
        sequential_paired([1, 0, 1], [1, 0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, "'alpha'"),
        ({"effect": 0.0}, "'effect'"),
        ({"margin": -0.1}, "'margin'"),
        ({"min_rows": 1}, "'min_rows'"),
        ({"champion_order": [1, 2]}, "one entry per value"),
    ],
)
def test_bad_parameters_are_refused_by_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        sequential_proportions([0, 1, 1], [1, 1, 0], **kwargs)  # type: ignore[arg-type]


def test_proportions_must_be_zero_or_one() -> None:
    with pytest.raises(InvalidParameterError, match="0 or 1"):
        sequential_proportions([0.5] * 30, [1.0] * 30)
