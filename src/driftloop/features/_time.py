"""Timestamps as integer microseconds since the epoch, in UTC.

Naive datetimes are taken as UTC (as DuckDB's ``TIMESTAMP`` and the simulator's data).

>>> to_us(datetime(1970, 1, 1, 0, 0, 1))
1000000
>>> from_us(1_000_000)
datetime.datetime(1970, 1, 1, 0, 0, 1)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["from_us", "from_us_many", "now_utc", "to_us"]

_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def to_us(value: Any) -> int:
    """Microseconds since the epoch of a datetime, pandas Timestamp or ISO string."""
    if isinstance(value, int):
        return value
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 1_000)


def from_us(us: int) -> datetime:
    return _EPOCH + us * _US


def from_us_many(us: npt.NDArray[np.int64]) -> list[datetime]:
    """:func:`from_us` of many timestamps in one numpy conversion (not a call per value).

    >>> from_us_many(np.array([0, 1_500_000]))[1]
    datetime.datetime(1970, 1, 1, 0, 0, 1, 500000)
    """
    out: list[datetime] = us.astype("datetime64[us]").tolist()
    return out


def now_utc() -> datetime:
    """The current time as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)
