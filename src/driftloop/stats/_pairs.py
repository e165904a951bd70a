"""Reference-vs-current data of many features, prepared once and shared by every statistic.

A :class:`NumericPair` holds, per numeric feature, the sorted reference sample and the
sorted current values (nulls dropped) and the bin counts of both by the reference's
quantile edges, padded into ``(features, bins)`` matrices so binned statistics run over
all features in one numpy expression. A :class:`CategoricalPair` holds category counts over
the union of reference and current categories the same way.

The expensive part (sorting the current window, one column at a time, in one array) is
done once; the empirical-CDF pass that KS and Wasserstein share runs once and keeps only
scalars per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import SchemaMismatchError
from driftloop.stats._profile import CategoricalProfile, NumericProfile

__all__ = ["CategoricalPair", "EcdfSummary", "NumericPair"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class EcdfSummary:
    """Per feature: the signed extremes of ``F_ref - F_cur`` over all points of both samples
    (as scipy's ``ks_2samp`` computes them) and the 1-Wasserstein distance."""

    max_diff: FloatArray
    min_diff: FloatArray
    wasserstein: FloatArray


def _padded(rows: Sequence[NDArray[np.int64]]) -> tuple[FloatArray, NDArray[np.bool_]]:
    width = max((len(r) for r in rows), default=1)
    counts = np.zeros((len(rows), width), dtype=np.float64)
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        counts[i, : len(r)] = r
        mask[i, : len(r)] = True
    return counts, mask


@dataclass(eq=False)
class NumericPair:
    """Reference profiles vs a current window of numeric features.

    ``ref_counts`` / ``cur_counts`` are ``(features, bins)`` counts by the reference
    edges (padding bins are ``False`` in ``mask``); ``ref_sorted`` / ``cur_sorted`` are the
    sorted non-null values per feature.
    """

    names: tuple[str, ...]
    ref_sorted: list[FloatArray]
    cur_sorted: list[FloatArray]
    ref_counts: FloatArray
    cur_counts: FloatArray
    mask: NDArray[np.bool_]
    ref_std: FloatArray
    _ecdf: EcdfSummary | None = field(default=None, repr=False)

    @classmethod
    def build(cls, profiles: Sequence[NumericProfile], current: pd.DataFrame) -> NumericPair:
        """Sort the current values of every profiled feature and bin them."""
        names = tuple(p.name for p in profiles)
        values = _numeric_matrix(current, names)  # (features, rows), one row per feature
        values.sort(axis=1)  # NaN sort last
        present = (~np.isnan(values)).sum(axis=1) if values.size else np.zeros(len(names), int)
        cur_sorted = [values[i, : int(present[i])] for i in range(len(names))]
        binned = [_with_outer_bins(p) for p in profiles]
        cur_bins = [_bin_sorted(e, c) for (e, _), c in zip(binned, cur_sorted, strict=True)]
        ref_counts, mask = _padded([counts for _, counts in binned])
        cur_counts, _ = _padded(cur_bins)
        return cls(
            names=names,
            ref_sorted=[p.sample for p in profiles],
            cur_sorted=cur_sorted,
            ref_counts=ref_counts,
            cur_counts=cur_counts,
            mask=mask,
            ref_std=np.array([p.std for p in profiles], dtype=np.float64),
        )

    @property
    def ref_n(self) -> NDArray[np.int64]:
        """Reference sample sizes (what KS and Wasserstein compare)."""
        return np.array([len(r) for r in self.ref_sorted], dtype=np.int64)

    @property
    def cur_n(self) -> NDArray[np.int64]:
        """Non-null current values per feature."""
        return np.array([len(c) for c in self.cur_sorted], dtype=np.int64)

    def ecdf(self) -> EcdfSummary:
        """One pass over the merged samples of each feature, shared by KS and Wasserstein."""
        if self._ecdf is None:
            f = len(self.names)
            max_diff, min_diff, w = np.full(f, np.nan), np.full(f, np.nan), np.full(f, np.nan)
            for i, (ref, cur) in enumerate(zip(self.ref_sorted, self.cur_sorted, strict=True)):
                if len(ref) and len(cur):
                    max_diff[i], min_diff[i], w[i] = _ecdf_pass(ref, cur)
            self._ecdf = EcdfSummary(max_diff, min_diff, w)
        return self._ecdf


def _numeric_matrix(current: pd.DataFrame, names: tuple[str, ...]) -> FloatArray:
    out = np.empty((len(names), len(current)), dtype=np.float64)
    for i, name in enumerate(names):
        column = current[name]
        if not (pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)):
            raise SchemaMismatchError(
                f"Feature '{name}' is numeric in the reference profile but the window holds "
                f"{column.dtype} values."
            )
        out[i] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _with_outer_bins(p: NumericProfile) -> tuple[FloatArray, NDArray[np.int64]]:
    """The reference bins plus a bin below the reference minimum and one above its maximum
    (reference count 0), so values outside anything seen in training (a constant feature
    that moves, amounts above the old maximum) show as drift instead of joining an end bin."""
    edges, counts = p.edges, p.counts
    if p.count == 0:
        return edges, counts
    if len(edges) == 0 or p.min < edges[0]:
        edges, counts = np.concatenate(([p.min], edges)), np.concatenate(([0], counts))
    above = np.nextafter(p.max, np.inf)
    if above > edges[-1]:
        edges, counts = np.concatenate((edges, [above])), np.concatenate((counts, [0]))
    return edges, counts.astype(np.int64)


def _bin_sorted(edges: FloatArray, sorted_values: FloatArray) -> NDArray[np.int64]:
    """Counts per reference bin (bin ``i`` holds ``edges[i-1] <= v < edges[i]``), read off
    sorted values with one binary search per edge instead of one per value."""
    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [len(sorted_values)]))).astype(np.int64)


def _right_counts(sorted_values: FloatArray) -> NDArray[np.int64]:
    """``searchsorted(a, a, side="right")`` of a sorted array in linear time: for each
    element, how many elements are <= it."""
    n = len(sorted_values)
    ties = sorted_values[1:] == sorted_values[:-1]
    if not ties.any():
        return np.arange(1, n + 1, dtype=np.int64)
    ends = np.flatnonzero(~ties) + 1
    bounds = np.concatenate((ends, [n]))
    return np.repeat(bounds, np.diff(np.concatenate(([0], bounds)))).astype(np.int64)


def _ecdf_pass(ref: FloatArray, cur: FloatArray) -> tuple[float, float, float]:
    """``F_ref - F_cur`` at every point of both samples, as scipy's ``ks_2samp`` evaluates
    it (right-continuous counts divided the same way, so the same floating-point numbers),
    and the 1-Wasserstein distance from the same values merged in order."""
    m, n = len(ref), len(cur)
    where = np.searchsorted(cur, ref, side="left")  # cur values below each ref value
    cur_right = _right_counts(cur)
    # cur values <= each ref value: add the run of equal cur values, if any
    probe = np.minimum(where, n - 1)
    equal = (where < n) & (cur[probe] == ref)
    cur_at_ref = np.where(equal, cur_right[probe], where)
    # ref values <= each cur value: ref i is <= cur[j] exactly when where[i] <= j
    ref_at_cur = np.cumsum(np.bincount(where, minlength=n + 1))[:n]
    at_cur = ref_at_cur / m - cur_right / n
    at_ref = _right_counts(ref) / m - cur_at_ref / n
    # merge the two sorted samples by their known positions (ref first among equals)
    pos_ref = where + np.arange(m)
    pos_cur = np.arange(n) + ref_at_cur
    values, diff = np.empty(m + n), np.empty(m + n)
    values[pos_ref], values[pos_cur] = ref, cur
    diff[pos_ref], diff[pos_cur] = at_ref, at_cur
    wasserstein = float(np.sum(np.abs(diff[:-1]) * np.diff(values)))
    high = max(float(at_cur.max()), float(at_ref.max()))
    low = min(float(at_cur.min()), float(at_ref.min()))
    return high, low, wasserstein


@dataclass(frozen=True, eq=False)
class CategoricalPair:
    """Reference category counts vs a current window, over the union of categories."""

    names: tuple[str, ...]
    categories: list[tuple[str, ...]]
    ref_counts: FloatArray
    cur_counts: FloatArray
    mask: NDArray[np.bool_]

    @classmethod
    def build(
        cls, profiles: Sequence[CategoricalProfile], current: pd.DataFrame
    ) -> CategoricalPair:
        """Count the current categories; categories unseen in the reference get a column."""
        categories: list[tuple[str, ...]] = []
        ref_rows: list[NDArray[np.int64]] = []
        cur_rows: list[NDArray[np.int64]] = []
        for p in profiles:
            seen = current[p.name].dropna().astype(str).value_counts()
            new = sorted(set(seen.index) - set(p.categories))
            cats = (*p.categories, *new)
            categories.append(cats)
            ref_rows.append(np.array([*p.counts, *([0] * len(new))], dtype=np.int64))
            cur_rows.append(np.asarray(seen.reindex(list(cats), fill_value=0), dtype=np.int64))
        ref_counts, mask = _padded(ref_rows)
        cur_counts, _ = _padded(cur_rows)
        return cls(tuple(p.name for p in profiles), categories, ref_counts, cur_counts, mask)

    @property
    def cur_n(self) -> NDArray[np.int64]:
        """Non-null current values per feature."""
        counts: NDArray[np.int64] = self.cur_counts.sum(axis=1).astype(np.int64)
        return counts
