from __future__ import annotations

import pandas as pd
import pytest

from driftloop.core import InvalidParameterError
from driftloop.recsys import RecommendRequest, time_split, train_recommender
from recsys_world import FAST, START, world


def test_split_puts_everything_from_the_cutoff_on_in_test_only() -> None:
    frame, _ = world()
    split = time_split(frame, fraction=0.7)
    assert (split.train["timestamp"] < split.cutoff).all()
    assert (split.test["timestamp"] >= split.cutoff).all()
    assert len(split.train) + len(split.test) == len(frame)
    assert 0.65 < len(split.train) / len(frame) < 0.75


def test_a_planted_future_rating_is_never_used_in_training() -> None:
    frame, catalog = world()
    cutoff = START + pd.Timedelta(days=40)
    future_item = "i3"  # an item the planted user never rated
    planted = pd.DataFrame(
        {
            "user_id": ["u0"] * 30,
            "item_id": [future_item] * 30,
            "rating": [5.0] * 30,
            "timestamp": [cutoff + pd.Timedelta(days=5)] * 30,
        }
    )
    frame = frame[~((frame["user_id"] == "u0") & (frame["item_id"] == future_item))]
    split = time_split(pd.concat([frame, planted]), cutoff=cutoff)
    assert future_item not in set(split.train.loc[split.train["user_id"] == "u0", "item_id"])
    rec = train_recommender(split.train, catalog, config=FAST)
    position = rec.items.index(future_item)
    before = split.train["item_id"].eq(future_item).sum()
    # Neither popularity nor the ranker's point-in-time features count the planted rows,
    assert rec.popularity.counts[position] == before
    assert rec.snapshot.item_count[position] == before
    # the user's history does not hold the item, so it is not treated as seen,
    assert future_item not in rec.snapshot.history["u0"]
    assert rec.snapshot.at <= cutoff
    # and nothing the model learned comes from after the cutoff.
    assert rec.snapshot.at == split.train["timestamp"].max() + pd.Timedelta(microseconds=1)
    answer = rec.recommend(RecommendRequest("u0", n=5))
    assert answer.interactions == len(set(split.train.loc[split.train.user_id == "u0", "item_id"]))


def test_split_refuses_a_fraction_outside_zero_one() -> None:
    frame, _ = world()
    with pytest.raises(InvalidParameterError, match="fraction"):
        time_split(frame, fraction=1.5)


def test_interactions_without_a_column_name_it() -> None:
    frame, _ = world()
    with pytest.raises(InvalidParameterError, match="timestamp"):
        time_split(frame.drop(columns="timestamp"))
