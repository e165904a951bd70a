from __future__ import annotations

from driftloop.data import movielens_100k


def test_movielens_100k_loads_from_the_wheel_with_demographics_genres_and_years() -> None:
    ml = movielens_100k()
    assert len(ml.ratings) == 100_000
    assert ml.ratings["user_id"].nunique() == 943
    assert ml.ratings["item_id"].nunique() == 1682
    assert ml.ratings["timestamp"].is_monotonic_increasing
    assert str(ml.ratings["timestamp"].dt.tz) == "UTC"
    assert set(ml.users.columns) >= {"user_id", "age", "gender", "occupation", "age_group"}
    toy_story = ml.items.set_index("item_id").loc["1"]
    assert toy_story["year"] == 1995
    assert toy_story["genres"] == ("Animation", "Children's", "Comedy")
