"""Problems of a window's inputs besides a moved distribution: features the server could
not fill, categories the model never saw in training, and values spelt otherwise than
the reference profile spells them.

>>> import pandas as pd
>>> records = pd.DataFrame({"missing": [["count_1h"], [], ["count_1h", "city"], []]})
>>> missing_rates(records)
{'city': 0.25, 'count_1h': 0.5}
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.stats import DriftTable, Profile, category_text

__all__ = ["UnseenCategories", "as_profiled", "missing_rates", "null_share", "unseen_categories"]


def missing_rates(records: pd.DataFrame) -> dict[str, float]:
    """The share of records whose ``missing`` list (the features the server could not
    fill, audit schema revision 2) names each feature; empty without the column."""
    if "missing" not in records.columns or records.empty:
        return {}
    counts: Counter[str] = Counter()
    for row in records["missing"]:
        counts.update({str(name) for name in _names(row)})
    return {name: counts[name] / len(records) for name in sorted(counts)}


def _names(row: Any) -> list[Any]:
    if row is None or isinstance(row, float):  # None / NaN: nothing missing
        return []
    if isinstance(row, str):  # JSON text, as a database keeps it
        loaded = json.loads(row) if row.startswith("[") else [row]
        return list(loaded)
    return list(row)


def null_share(profile: Profile, name: str) -> float:
    """The share of nulls a feature had in the reference (0 for a feature it lacks)."""
    p = profile.numeric.get(name) or profile.categorical.get(name)
    if p is None:
        return 0.0
    total = p.count + p.nulls
    return p.nulls / total if total else 0.0


@dataclass(frozen=True)
class UnseenCategories:
    """Values of a categorical feature in categories the reference never saw."""

    share: float  # of the window's non-null values
    categories: tuple[str, ...]  # by count, most frequent first


def unseen_categories(table: DriftTable, profile: Profile) -> dict[str, UnseenCategories]:
    """Per categorical feature of ``table`` (those judged ``ok``), the window's values in
    categories that ``profile`` does not have."""
    pair = table.categorical
    out: dict[str, UnseenCategories] = {}
    if pair is None:
        return out
    for i, name in enumerate(pair.names):
        known = len(profile.categorical[name].categories)
        categories = pair.categories[i]
        if table.status[name] != "ok" or len(categories) == known:
            continue
        new = pair.cur_counts[i, known : len(categories)]
        total = float(pair.cur_counts[i].sum())
        if new.sum() == 0 or total == 0:
            continue
        order = np.argsort(-new, kind="stable")
        out[name] = UnseenCategories(
            float(new.sum()) / total,
            tuple(categories[known + int(j)] for j in order if new[j] > 0),
        )
    return out


def as_profiled(records: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """``records`` with each profiled feature spelt as the profile spells it: numbers for
    a numeric feature held as objects (booleans ``True``/``False``, numeric text, a
    column of nulls), text for a categorical feature held as numbers (``3``, not
    ``3.0``, unless the reference spelt ``3.0``). Other columns are untouched.

    >>> profile = Profile.from_frame(pd.DataFrame({"n": [1.0, 2.0], "store": ["3", "7"]}))
    >>> served = pd.DataFrame({"n": [True, None], "store": [3.0, None]})
    >>> as_profiled(served, profile).to_dict("list")
    {'n': [1.0, nan], 'store': ['3', nan]}
    """
    changed: dict[str, Any] = {}
    for name in profile.numeric:
        column = records.get(name)
        if column is not None and not _numbers(column):
            changed[name] = pd.to_numeric(column.map(_number), errors="coerce")
    for name, p in profile.categorical.items():
        column = records.get(name)
        if column is not None and _numbers(column):
            changed[name] = _as_text(column, p.categories)
    return records.assign(**changed) if changed else records


def _numbers(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _number(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return float(value)
    return value


def _as_text(column: pd.Series, categories: tuple[str, ...]) -> pd.Series:
    known, floats = set(categories), any(c.endswith(".0") for c in categories)

    def spell(value: Any) -> str | None:
        if pd.isna(value):
            return None
        if isinstance(value, bool | np.bool_):
            text = str(bool(value))  # as a column of Python booleans was profiled
            return text if text in known else category_text(value)
        return str(float(value)) if floats else category_text(value)

    return column.map(spell)
