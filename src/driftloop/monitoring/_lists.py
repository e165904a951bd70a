"""Drift of served recommendation lists: coverage and diversity per window, read from
the audit log, against a reference (the first window, or offline figures).

Each audit row of a recommender holds its list in ``outputs["items"]`` and the level
that answered in ``decision``. Coverage grows with the number of lists, so compare
windows of similar traffic (or pass a reference measured on as many lists).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from driftloop.core.errors import InvalidParameterError
from driftloop.recsys import coverage, diversity

__all__ = ["ListDrift", "ListStats", "list_drift", "served_lists"]


@dataclass(frozen=True)
class ListStats:
    """One window of served lists: how many, their coverage of the catalog, their
    intra-list diversity, and the share answered by each fallback level."""

    start: datetime
    end: datetime
    lists: int
    coverage: float
    diversity: float
    levels: Mapping[str, float]


@dataclass(frozen=True)
class ListDrift:
    """Windows compared with ``reference``: a metric drifted in a window when it moved by
    more than ``tolerance`` (relative) from the reference's."""

    reference: ListStats
    windows: tuple[ListStats, ...]
    tolerance: float

    def drifted(self) -> list[tuple[datetime, str, float, float]]:
        """(window start, metric, reference value, window value) of every drift."""
        out = []
        for window in self.windows:
            for metric in ("coverage", "diversity"):
                ref, got = getattr(self.reference, metric), getattr(window, metric)
                if ref > 0 and abs(got - ref) / ref > self.tolerance:
                    out.append((window.start, metric, ref, got))
        return out


def served_lists(
    frame: pd.DataFrame,
    *,
    catalog_size: int,
    tags: Mapping[str, Sequence[str]],
    every: timedelta,
) -> list[ListStats]:
    """Per window of ``every``, the stats of the lists in an audit window frame (rows
    without a list are skipped)."""
    if every <= timedelta(0):
        raise InvalidParameterError(f"every must be positive, got {every}.")
    rows = frame[frame["outputs"].map(lambda o: isinstance(o, dict) and "items" in o)]
    if rows.empty:
        return []
    ts = pd.to_datetime(rows["ts"], utc=True)
    origin = ts.min().floor("s")
    buckets = ((ts - origin) // pd.Timedelta(every)).astype(int)
    out = []
    for bucket in sorted(set(buckets.tolist())):
        group = rows[(buckets == bucket).to_numpy()]
        lists = [list(o["items"]) for o in group["outputs"]]
        start = origin + bucket * pd.Timedelta(every)
        levels = group["decision"].value_counts(normalize=True)
        out.append(
            ListStats(
                start.to_pydatetime(),
                (start + pd.Timedelta(every)).to_pydatetime(),
                len(lists),
                coverage(lists, catalog_size),
                diversity(lists, tags),
                {str(k): float(v) for k, v in levels.items()},
            )
        )
    return out


def list_drift(
    frame: pd.DataFrame,
    *,
    catalog_size: int,
    tags: Mapping[str, Sequence[str]],
    every: timedelta,
    reference: ListStats | None = None,
    tolerance: float = 0.25,
) -> ListDrift:
    """Coverage and diversity of each window against ``reference`` (default: the first
    window, which is then not compared with itself)."""
    windows = served_lists(frame, catalog_size=catalog_size, tags=tags, every=every)
    if reference is None:
        if not windows:
            raise InvalidParameterError("No served lists in the frame to take a reference from.")
        reference, windows = windows[0], windows[1:]
    return ListDrift(reference, tuple(windows), tolerance)
