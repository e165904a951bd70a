from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftloop.core import InvalidParameterError
from driftloop.stats import Profile


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, 20_000),
            "count_1h": rng.poisson(2, 20_000),
            "is_online": rng.random(20_000) < 0.3,
            "channel": rng.choice(["pos", "web", "atm"], 20_000),
        }
    )


def test_quantile_bins_hold_equal_shares_of_the_reference(frame: pd.DataFrame) -> None:
    p = Profile.from_frame(frame, bins=10).numeric["amount"]
    assert len(p.counts) == len(p.edges) + 1 == 10
    assert p.counts.sum() == 20_000
    assert np.all(np.abs(p.counts / 20_000 - 0.1) < 0.001)
    assert np.array_equal(np.bincount(p.bin_of(frame["amount"].to_numpy()), minlength=10), p.counts)


def test_discrete_features_get_unique_edges(frame: pd.DataFrame) -> None:
    p = Profile.from_frame(frame, bins=20).numeric["count_1h"]
    assert len(np.unique(p.edges)) == len(p.edges)
    assert p.counts.sum() == 20_000


def test_sample_is_sorted_and_bounded(frame: pd.DataFrame) -> None:
    p = Profile.from_frame(frame, sample_size=1_000).numeric["amount"]
    assert len(p.sample) == 1_000
    assert np.all(np.diff(p.sample) >= 0)


def test_categories_and_nulls_are_counted() -> None:
    frame = pd.DataFrame({"c": ["a", None, "b", "a"], "x": [1.0, np.nan, np.nan, 2.0]})
    profile = Profile.from_frame(frame)
    assert profile.categorical["c"].categories == ("a", "b")
    assert profile.categorical["c"].counts == (2, 1)
    assert profile.categorical["c"].nulls == 1
    assert profile.numeric["x"].nulls == 2
    assert profile.features == ["x", "c"]


def test_round_trips_through_json(frame: pd.DataFrame) -> None:
    profile = Profile.from_frame(frame, predictions=np.linspace(0, 1, len(frame)))
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile
    assert again.prediction is not None
    assert again.prediction.max == 1.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="'bins'"):
        Profile.from_frame(pd.DataFrame({"x": [1.0]}), bins=0)


def test_infinite_values_count_as_missing_not_as_data() -> None:
    frame = pd.DataFrame({"ratio": [1.0, np.inf, -np.inf, 3.0, np.nan]})
    p = Profile.from_frame(frame).numeric["ratio"]
    assert (p.count, p.nulls) == (2, 3)
    assert np.isfinite([p.mean, p.std, p.min, p.max]).all()
