"""The demo's regression story: delivery times of a courier service, with text, boolean
and missing columns, and a planted concept drift (the same orders take longer from the
drift day: a road closure slows the north and every kilometre costs more).

The inputs keep their distribution across the drift; only the relation to the label
changes, so the drift shows in the realized error once labels come back.

>>> story = delivery_story(rows_per_day=50, days=4, drift_day=2, seed=1)
>>> story.task, story.label, sorted(story.categorical)
('regression', 'minutes', ['region', 'weather'])
>>> bool(story.rows["weather"].isna().any()), str(story.rows["express"].dtype)
(True, 'bool')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftloop.data._story import LABEL_KNOWN_AT, StoryData

__all__ = ["DELIVERY_FEATURES", "delivery_story"]

DELIVERY_FEATURES = (
    "distance_km",
    "items",
    "region",
    "express",
    "weather",
    "courier_rating",
    "hour",
)
REGIONS = ("north", "south", "east", "west")
WEATHER = ("clear", "rain", "snow")
REGION_MINUTES = {"north": 4.0, "south": 0.0, "east": 2.0, "west": -1.0}
WEATHER_MINUTES = {"clear": 0.0, "rain": 6.0, "snow": 14.0}


def delivery_story(
    *,
    rows_per_day: int = 1_200,
    days: int = 60,
    drift_day: int = 35,
    label_delay_days: float = 0.5,
    seed: int = 7,
    start: str = "2025-01-01",
) -> StoryData:
    """Deliveries over ``days``, about ``rows_per_day`` a day (Poisson); minutes to
    deliver known ``label_delay_days`` after the order."""
    rng = np.random.default_rng([seed, 13])
    counts = rng.poisson(rows_per_day, size=days)
    day = np.repeat(np.arange(days), counts)
    n = len(day)
    seconds = rng.uniform(0, 86_400, size=n)
    when = pd.Timestamp(start) + pd.to_timedelta(day * 86_400 + seconds, unit="s")
    distance = rng.gamma(2.0, 2.5, size=n)
    items = rng.integers(1, 9, size=n)
    region = rng.choice(REGIONS, size=n, p=[0.3, 0.3, 0.2, 0.2])
    express = rng.random(n) < 0.25
    weather = rng.choice(WEATHER, size=n, p=[0.6, 0.3, 0.1]).astype(object)
    weather[rng.random(n) < 0.12] = None  # the weather feed is down now and then
    rating = np.round(rng.normal(4.5, 0.3, size=n).clip(1, 5), 2)
    rating[rng.random(n) < 0.08] = np.nan  # new couriers have no rating yet
    hour = np.floor(seconds / 3_600)
    rush = ((hour >= 11) & (hour < 14)) | ((hour >= 17) & (hour < 20))
    drifted = day >= drift_day
    per_km = np.where(drifted, 4.5, 2.5)
    north = np.where(drifted & (region == "north"), 18.0, 0.0)
    minutes = (
        12.0
        + per_km * distance
        + 1.2 * items
        + np.vectorize(REGION_MINUTES.get)(region)
        + np.array([WEATHER_MINUTES.get(w, 4.0) if w else 4.0 for w in weather])
        - 7.0 * express
        + 5.0 * rush
        - 3.0 * np.nan_to_num(rating - 4.5, nan=0.0)
        + north
        + rng.normal(0, 3.0, size=n)
    )
    rows = pd.DataFrame(
        {
            "order_id": np.arange(n, dtype=np.int64),
            "ordered_at": when,
            "distance_km": np.round(distance, 2),
            "items": items.astype(np.int64),
            "region": region,
            "express": express,
            "weather": pd.Series(weather, dtype=object),
            "courier_rating": rating,
            "hour": hour,
            "minutes": np.round(minutes.clip(3, None), 1),
        }
    ).sort_values(["ordered_at", "order_id"], kind="stable", ignore_index=True)
    rows[LABEL_KNOWN_AT] = rows["ordered_at"] + pd.Timedelta(days=label_delay_days)
    return StoryData(
        model="deliveries",
        task="regression",
        rows=rows,
        features=DELIVERY_FEATURES,
        label="minutes",
        timestamp="ordered_at",
        id="order_id",
        start=pd.Timestamp(start),
        days=days,
        drift_day=drift_day,
        drift="a road closure: deliveries in the north take 18 minutes longer and every "
        "kilometre costs 4.5 minutes instead of 2.5",
        categorical=("region", "weather"),
    )
