"""Windows over prediction records: tumbling or sliding, by time or by row count.

>>> import pandas as pd
>>> records = pd.DataFrame({"ts": pd.date_range("2025-01-01", periods=6, freq="h", tz="UTC")})
>>> [len(w.records) for w in windows(records, WindowSpec(by="count", size=4, step=2))]
[4, 4]
>>> [w.start.hour for w in windows(records, WindowSpec(by="time", size="2h"))]
[0, 2, 4]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from driftloop.core.errors import InvalidParameterError

__all__ = ["Window", "WindowSpec", "windows"]


@dataclass(frozen=True)
class WindowSpec:
    """``by="time"``: ``size`` and ``step`` are durations (``"1D"``, ``"6h"``); ``by="count"``:
    numbers of records. ``step`` defaults to ``size`` (tumbling); a smaller step slides."""

    by: Literal["time", "count"] = "time"
    size: str | int = "1D"
    step: str | int | None = None

    def __post_init__(self) -> None:
        if self.by not in ("time", "count"):
            raise InvalidParameterError(f"Window 'by' must be 'time' or 'count'; got {self.by!r}.")
        for name in ("size", "step"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.by == "count" and not (isinstance(value, int) and value >= 1):
                raise InvalidParameterError(
                    f"Window '{name}' must be a count >= 1 when by='count'; got {value!r}."
                )
            if self.by == "time" and self._duration(value) <= pd.Timedelta(0):
                raise InvalidParameterError(
                    f"Window '{name}' must be a positive duration when by='time'; got {value!r}."
                )

    @staticmethod
    def _duration(value: str | int) -> pd.Timedelta:
        try:
            return pd.Timedelta(value)
        except (ValueError, TypeError):
            raise InvalidParameterError(
                f"Window duration {value!r} is not a duration like '1D' or '6h'."
            ) from None

    @property
    def tumbling(self) -> bool:
        """Whether windows do not overlap."""
        return self.step is None or self.step == self.size


@dataclass(frozen=True, eq=False)
class Window:
    """The records with ``start <= ts < end`` (for count windows: the first and last ts)."""

    start: pd.Timestamp
    end: pd.Timestamp
    records: pd.DataFrame


def windows(records: pd.DataFrame, spec: WindowSpec) -> Iterator[Window]:
    """Cut ``records`` (sorted by ``ts``) into windows. Time windows align to multiples of
    their size from the epoch (daily windows start at midnight UTC); only full count
    windows are produced."""
    if records.empty:
        return
    ts = pd.to_datetime(records["ts"], utc=True)
    if spec.by == "count":
        size = int(spec.size)
        step = int(spec.step if spec.step is not None else size)
        for lo in range(0, len(records) - size + 1, step):
            part = records.iloc[lo : lo + size]
            yield Window(ts.iloc[lo], ts.iloc[lo + size - 1], part)
        return
    size_t = WindowSpec._duration(spec.size)
    step_t = WindowSpec._duration(spec.step) if spec.step is not None else size_t
    values = ts.to_numpy(dtype="datetime64[ns]")
    first = ts.iloc[0].floor(step_t)
    start = first - size_t + step_t
    while start <= ts.iloc[-1]:
        end = start + size_t
        lo, hi = np.searchsorted(values, [start.to_datetime64(), end.to_datetime64()])
        if hi > lo:
            yield Window(start, end, records.iloc[lo:hi])
        start += step_t
