from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from driftloop.monitoring import list_drift


def frame(lists: list[list[str]], start: datetime, level: str = "personalized") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": [start + timedelta(seconds=k) for k in range(len(lists))],
            "decision": [level] * len(lists),
            "outputs": [{"items": items, "level": level} for items in lists],
        }
    )


TAGS = {f"i{k}": (f"g{k % 4}",) for k in range(40)}


def test_lists_that_collapse_onto_few_items_of_one_genre_are_flagged() -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    varied = [[f"i{(k * 3 + j) % 40}" for j in range(5)] for k in range(20)]
    collapsed = [["i0", "i4", "i8", "i12", "i16"] for _ in range(20)]  # all genre g0
    served = pd.concat([frame(varied, day), frame(collapsed, day + timedelta(hours=1))])
    drift = list_drift(served, catalog_size=40, tags=TAGS, every=timedelta(hours=1))
    assert drift.reference.lists == 20
    assert drift.reference.levels == {"personalized": 1.0}
    flagged = {metric for _, metric, _, _ in drift.drifted()}
    assert flagged == {"coverage", "diversity"}


def test_steady_lists_are_not_flagged() -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    lists = [[f"i{(k * 3 + j) % 40}" for j in range(5)] for k in range(20)]
    served = pd.concat([frame(lists, day), frame(lists, day + timedelta(hours=1))])
    drift = list_drift(served, catalog_size=40, tags=TAGS, every=timedelta(hours=1))
    assert len(drift.windows) == 1
    assert drift.drifted() == []
