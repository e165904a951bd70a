from __future__ import annotations

import pandas as pd
import pytest

from driftloop.core import InvalidParameterError
from driftloop.monitoring import WindowSpec, windows


@pytest.fixture
def records() -> pd.DataFrame:
    ts = pd.date_range("2025-01-01 00:30", periods=48, freq="h", tz="UTC")
    return pd.DataFrame({"ts": ts, "i": range(48)})


def test_tumbling_daily_windows_cover_every_record_once_aligned_to_midnight(records) -> None:
    got = list(windows(records, WindowSpec("time", "1D")))
    assert [w.start for w in got] == [
        pd.Timestamp("2025-01-01", tz="UTC"),
        pd.Timestamp("2025-01-02", tz="UTC"),
    ]
    assert sum(len(w.records) for w in got) == 48
    assert all((w.records["ts"] >= w.start).all() and (w.records["ts"] < w.end).all() for w in got)


def test_sliding_time_windows_overlap_by_size_minus_step(records) -> None:
    got = list(windows(records, WindowSpec("time", "12h", "6h")))
    assert all(w.end - w.start == pd.Timedelta("12h") for w in got)
    assert [w.start.hour for w in got[:3]] == [18, 0, 6]  # the first starts before the data
    assert len(got[2].records) == 12


def test_count_windows_tumble_or_slide_and_keep_only_full_windows(records) -> None:
    tumbling = list(windows(records, WindowSpec("count", 10)))
    assert [len(w.records) for w in tumbling] == [10] * 4
    sliding = list(windows(records, WindowSpec("count", 10, 5)))
    assert [int(w.records["i"].iloc[0]) for w in sliding] == [0, 5, 10, 15, 20, 25, 30, 35]


@pytest.mark.parametrize(
    ("by", "size", "match"),
    [
        ("count", "1D", "count >= 1"),
        ("time", "-1h", "positive duration"),
        ("time", "soon", "not a duration"),
        ("rows", 10, "'time' or 'count'"),
    ],
)
def test_bad_window_specs_name_the_problem(by, size, match) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        WindowSpec(by, size)
