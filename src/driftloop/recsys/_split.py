"""Time-based split: the model learns from the past and is judged on the future.

Every interaction at or after the cutoff is in ``test`` only; nothing computed for
training (ids known, popularity, features, the user's history) may read it.

>>> import pandas as pd
>>> frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"],
...     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02"], utc=True)})
>>> split = time_split(frame, fraction=0.5)
>>> list(split.train["item_id"]), list(split.test["item_id"]), str(split.cutoff.date())
(['x'], ['x', 'y'], '2024-01-02')
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from driftloop.core.errors import InvalidParameterError
from driftloop.recsys._catalog import check_interactions

__all__ = ["Split", "time_split"]


@dataclass(frozen=True)
class Split:
    """Interactions before ``cutoff`` (``train``) and from it on (``test``)."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: pd.Timestamp

    def counts(self) -> pd.Series:
        """Each user's number of training interactions (0 for a user seen only in test)."""
        users = pd.Index(self.test["user_id"].unique()).union(self.train["user_id"].unique())
        return self.train["user_id"].value_counts().reindex(users, fill_value=0)


def time_split(
    interactions: pd.DataFrame, *, fraction: float = 0.8, cutoff: pd.Timestamp | None = None
) -> Split:
    """Split at ``cutoff``, or at the time by which ``fraction`` of the interactions
    happened."""
    if cutoff is None and not 0.0 < fraction < 1.0:
        raise InvalidParameterError(f"fraction must be in (0, 1), got {fraction}.")
    frame = check_interactions(interactions)
    if cutoff is None:
        cutoff = frame["timestamp"].iloc[int(len(frame) * fraction)]
    cutoff = pd.Timestamp(cutoff)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    before = frame["timestamp"] < cutoff
    return Split(
        frame[before].reset_index(drop=True), frame[~before].reset_index(drop=True), cutoff
    )
