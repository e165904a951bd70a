"""Popularity: the global baseline, and per demographic cohort (the cold-start levels)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["Popularity", "cohort_key"]


def cohort_key(features: Mapping[str, Any], cohort: tuple[str, ...]) -> str | None:
    """The cohort a user belongs to (None when one of its features is unknown)."""
    values = [features.get(c) for c in cohort]
    if not cohort or any(v is None for v in values):
        return None
    return "|".join(str(v) for v in values)


@dataclass
class Popularity:
    """Interaction counts per item: global, and per cohort of users.

    ``counts`` are in the order of ``items`` (the catalog's items, those never seen at 0).
    """

    items: tuple[str, ...]
    counts: NDArray[np.float64]
    cohorts: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    cohort: tuple[str, ...] = ()

    @classmethod
    def fit(
        cls,
        interactions: pd.DataFrame,
        items: tuple[str, ...],
        users: pd.DataFrame | None = None,
        cohort: tuple[str, ...] = (),
    ) -> Popularity:
        index = pd.Index(items)
        codes = index.get_indexer(pd.Index(interactions["item_id"]))
        known = codes >= 0
        counts = np.bincount(codes[known], minlength=len(items)).astype(np.float64)
        cohorts: dict[str, NDArray[np.float64]] = {}
        if cohort and users is not None:
            table = users.set_index("user_id")[list(cohort)].astype(str)
            # each user's key once (a join per user, not per interaction: ~100x fewer)
            by_user = table.agg("|".join, axis=1)
            keys = by_user.reindex(interactions["user_id"]).to_numpy()
            has = pd.notna(table.reindex(interactions["user_id"])).all(axis=1).to_numpy()
            frame = pd.DataFrame({"key": keys, "code": codes})[known & has]
            for key, group in frame.groupby("key"):
                cohorts[str(key)] = np.bincount(
                    group["code"].to_numpy(), minlength=len(items)
                ).astype(np.float64)
        return cls(items, counts, cohorts, cohort)

    def scores(self, key: str | None = None) -> NDArray[np.float64]:
        """Counts of the cohort ``key`` (the global counts when None or unknown)."""
        if key is not None and key in self.cohorts:
            return self.cohorts[key]
        return self.counts

    def support(self, key: str | None) -> int:
        """How many interactions a cohort's list rests on (0: unknown cohort)."""
        return int(self.cohorts[key].sum()) if key is not None and key in self.cohorts else 0

    def top(self, n: int, key: str | None = None) -> list[str]:
        order = np.argsort(-self.scores(key), kind="stable")[:n]
        return [self.items[i] for i in order]

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        keys = sorted(self.cohorts)
        stacked = (
            np.stack([self.cohorts[k] for k in keys]) if keys else np.zeros((0, len(self.items)))
        )
        return {"pop_counts": self.counts, "pop_cohorts": stacked}

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, NDArray[Any]],
        items: tuple[str, ...],
        keys: list[str],
        cohort: tuple[str, ...],
    ) -> Popularity:
        stacked = arrays["pop_cohorts"]
        return cls(
            items,
            np.asarray(arrays["pop_counts"], dtype=np.float64),
            {k: np.asarray(stacked[i], dtype=np.float64) for i, k in enumerate(keys)},
            cohort,
        )
