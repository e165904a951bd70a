"""Users and items with their content features, and the integer codes models use.

A :class:`Catalog` is what a recommender knows about users and items besides their
interactions: user categories (demographics) and item tags (genres) and year. Interactions
are a frame with ``user_id``, ``item_id`` and ``timestamp`` (aware UTC) columns, ids as
text. :class:`Encoding` turns ids and features into codes (0 is "unknown": a user or item
the model was not trained on still gets its content features encoded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InvalidParameterError

__all__ = ["INTERACTION_COLUMNS", "Catalog", "Encoding", "check_interactions"]

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
_YEAR_BUCKET = 5  # years per bucket of the item tower's year embedding
MAX_TAGS = 8


def check_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text ids and aware-UTC timestamps, sorted by time; a clear error
    naming the column when one is missing."""
    missing = [c for c in INTERACTION_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidParameterError(
            f"Interactions need columns {', '.join(INTERACTION_COLUMNS)}; missing "
            f"{', '.join(missing)}. Got: {', '.join(map(str, frame.columns))}."
        )
    out = frame.copy()
    out["user_id"] = out["user_id"].astype(str)
    out["item_id"] = out["item_id"].astype(str)
    ts = pd.to_datetime(out["timestamp"], utc=True)
    out["timestamp"] = ts
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Catalog:
    """Users (``user_id`` and the ``user_features`` category columns) and items
    (``item_id``, a ``item_tags`` column of tuples and an optional ``item_year`` column).
    ``cohort`` names the user features whose combination is a demographic cohort."""

    users: pd.DataFrame
    items: pd.DataFrame
    user_features: tuple[str, ...]
    item_tags: str
    item_year: str | None = None
    cohort: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for frame, what, columns in (
            (self.users, "users", ("user_id", *self.user_features)),
            (self.items, "items", ("item_id", self.item_tags)),
        ):
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise InvalidParameterError(
                    f"The catalog's {what} have no column {', '.join(missing)}. "
                    f"Known: {', '.join(map(str, frame.columns))}."
                )
        unknown = [c for c in self.cohort if c not in self.user_features]
        if unknown:
            raise InvalidParameterError(
                f"Cohort features {', '.join(unknown)} are not user features "
                f"({', '.join(self.user_features)})."
            )


@dataclass(frozen=True)
class Encoding:
    """Codes for ids, user categories, item tags and year buckets (0: unknown)."""

    users: tuple[str, ...]
    items: tuple[str, ...]
    user_features: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]  # per user feature
    tags: tuple[str, ...]
    year_min: float | None

    @classmethod
    def fit(cls, interactions: pd.DataFrame, catalog: Catalog) -> Encoding:
        """Ids from ``interactions`` (what the model can learn), content from the catalog."""
        users = tuple(sorted(interactions["user_id"].unique()))
        items = tuple(sorted(interactions["item_id"].unique()))
        categories = tuple(
            tuple(sorted(catalog.users[f].astype(str).unique())) for f in catalog.user_features
        )
        tags = tuple(sorted({t for ts in catalog.items[catalog.item_tags] for t in ts}))
        year_min = None
        if catalog.item_year is not None:
            years = pd.to_numeric(catalog.items[catalog.item_year], errors="coerce")
            year_min = float(years.min()) if years.notna().any() else None
        return cls(users, items, catalog.user_features, categories, tags, year_min)

    def to_json(self) -> dict[str, Any]:
        return {
            "users": list(self.users),
            "items": list(self.items),
            "user_features": list(self.user_features),
            "categories": [list(c) for c in self.categories],
            "tags": list(self.tags),
            "year_min": self.year_min,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Encoding:
        return cls(
            tuple(data["users"]),
            tuple(data["items"]),
            tuple(data["user_features"]),
            tuple(tuple(c) for c in data["categories"]),
            tuple(data["tags"]),
            data["year_min"],
        )

    @property
    def sizes(self) -> dict[str, Any]:
        return {
            "users": len(self.users) + 1,
            "items": len(self.items) + 1,
            "categories": [len(c) + 1 for c in self.categories],
            "tags": len(self.tags) + 1,
            "years": 40,
        }

    def user_codes(self, ids: Iterable[str]) -> NDArray[np.int64]:
        index = {u: k + 1 for k, u in enumerate(self.users)}
        return np.array([index.get(u, 0) for u in ids], dtype=np.int64)

    def item_codes(self, ids: Iterable[str]) -> NDArray[np.int64]:
        index = {i: k + 1 for k, i in enumerate(self.items)}
        return np.array([index.get(i, 0) for i in ids], dtype=np.int64)

    def user_feature_codes(self, rows: Sequence[Mapping[str, Any]]) -> NDArray[np.int64]:
        """One row of category codes per user (its feature values, text)."""
        out = np.zeros((len(rows), len(self.user_features)), dtype=np.int64)
        for j, (feature, known) in enumerate(zip(self.user_features, self.categories, strict=True)):
            index = {c: k + 1 for k, c in enumerate(known)}
            for i, row in enumerate(rows):
                value = row.get(feature)
                out[i, j] = index.get(str(value), 0) if value is not None else 0
        return out

    def tag_codes(self, tags: Sequence[Sequence[str]]) -> NDArray[np.int64]:
        """Padded tag codes, one row per item (0: padding or an unknown tag)."""
        index = {t: k + 1 for k, t in enumerate(self.tags)}
        out = np.zeros((len(tags), MAX_TAGS), dtype=np.int64)
        for i, row in enumerate(tags):
            for j, tag in enumerate(list(row)[:MAX_TAGS]):
                out[i, j] = index.get(tag, 0)
        return out

    def year_codes(self, years: Sequence[float | None]) -> NDArray[np.int64]:
        out = np.zeros(len(years), dtype=np.int64)
        if self.year_min is None:
            return out
        for i, year in enumerate(years):
            if year is not None and np.isfinite(year):
                out[i] = int(np.clip((year - self.year_min) // _YEAR_BUCKET + 1, 1, 39))
        return out


def item_content(catalog: Catalog, encoding: Encoding, ids: Sequence[str]) -> dict[str, Any]:
    """Tag and year codes of ``ids`` (items missing from the catalog: all unknown)."""
    items = catalog.items
    tags = encoding.tag_codes([tuple(t) for t in items[catalog.item_tags]])
    if catalog.item_year is not None:
        years = encoding.year_codes(pd.to_numeric(items[catalog.item_year]).tolist())
    else:
        years = np.zeros(len(items), dtype=np.int64)
    rows = pd.Index(items["item_id"].astype(str)).get_indexer(pd.Index(list(ids)))
    tags = np.vstack([tags, np.zeros((1, MAX_TAGS), dtype=np.int64)])  # row -1: unknown
    years = np.append(years, 0)
    return {"tags": tags[rows], "years": years[rows]}
