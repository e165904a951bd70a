from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.core import SchemaMismatchError
from driftloop.core.config import MonitoringConfig
from driftloop.monitoring import (
    AuditRecordSource,
    FrameRecordSource,
    Monitor,
    MonitoringStore,
    RecordSource,
    Reference,
    StaticReferences,
    drift_report,
    realized_performance,
    write_html_report,
)
from driftloop.stats import Profile


def _records(days: int, n_per_day: int, features: int, shift_from: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = days * n_per_day
    day = np.repeat(np.arange(days), n_per_day)
    values = rng.normal(0, 1, (n, features)) + np.where(day >= shift_from, 1.0, 0.0)[:, None]
    frame = pd.DataFrame(values, columns=[f"f{i:03d}" for i in range(features)])
    score = 1 / (1 + np.exp(-(values[:, 0] - 2)))
    label = (rng.random(n) < score).astype(float)
    frame.insert(0, "prediction_id", [f"p{i}" for i in range(n)])
    frame.insert(
        1,
        "ts",
        pd.Timestamp("2025-03-01", tz="UTC")
        + pd.to_timedelta(day * 86_400 + rng.integers(0, 86_400, n), unit="s"),
    )
    frame.insert(2, "model", "m")
    frame.insert(3, "version", 2)
    frame.insert(4, "route", "champion")
    frame.insert(5, "score", score)
    frame.insert(6, "decision", np.where(score >= 0.5, "decline", "approve"))
    frame.insert(7, "label", label)
    return frame


def _reference(records: pd.DataFrame) -> Reference:
    features = records.filter(like="f")
    profile = Profile.from_frame(features, predictions=records["score"].to_numpy())
    return Reference(
        profile,
        realized_performance(
            records["score"].to_numpy(), records["label"].to_numpy(), threshold=0.5
        ),
    )


def test_late_labels_update_a_stored_window_and_nothing_else_is_redone(tmp_path: Path) -> None:
    records = _records(days=3, n_per_day=600, features=3, shift_from=99)
    reference = _reference(records)
    pending = records.assign(label=np.nan)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    refs = StaticReferences({("m", 2): reference})
    config = MonitoringConfig(alerts=())
    end = pd.Timestamp("2025-03-04", tz="UTC").to_pydatetime()
    first = Monitor(FrameRecordSource(pending), refs, store, config).run_once(end)
    assert len(first) == 3
    assert all(r.performance is None for r in first)
    assert Monitor(FrameRecordSource(pending), refs, store, config).run_once(end) == []
    labelled = Monitor(FrameRecordSource(records), refs, store, config).run_once(end)
    assert len(labelled) == 3
    assert all(r.performance is not None for r in labelled)
    assert len(store.window_rows("m")) == 3  # replaced, not duplicated
    store.dispose()


def test_an_unfinished_window_waits_for_its_end(tmp_path: Path) -> None:
    records = _records(days=2, n_per_day=600, features=2, shift_from=99)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    monitor = Monitor(
        FrameRecordSource(records),
        StaticReferences({("m", 2): _reference(records)}),
        store,
        MonitoringConfig(alerts=()),
    )
    midday = pd.Timestamp("2025-03-02 12:00", tz="UTC").to_pydatetime()
    assert [r.start.day for r in monitor.run_once(midday)] == [1]
    store.dispose()


def test_a_partial_window_is_assessed_on_request_and_again_as_records_come(
    tmp_path: Path,
) -> None:
    records = _records(days=2, n_per_day=600, features=2, shift_from=99)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    refs = StaticReferences({("m", 2): _reference(records)})
    config = MonitoringConfig(alerts=())
    noon = pd.Timestamp("2025-03-02 12:00", tz="UTC").to_pydatetime()
    evening = pd.Timestamp("2025-03-02 20:00", tz="UTC").to_pydatetime()

    monitor = Monitor(FrameRecordSource(records), refs, store, config)
    assert [r.start.day for r in monitor.run_once(noon)] == [1]
    assert [s.reason for s in monitor.skipped] == ["filling"]
    assert "the newest records are from 2025-03-02 1" in monitor.skipped[0].message

    at_noon = monitor.run_once(noon, partial=True)
    assert [(r.start.day, r.end.day) for r in at_noon] == [(2, 3)]
    assert 0 < at_noon[0].rows < 600
    assert "partial window: records up to 2025-03-02 12:00 UTC" in at_noon[0].reasons
    assert [s.reason for s in monitor.skipped] == ["unchanged"]  # day 1, stored before

    later = monitor.run_once(evening, partial=True)
    assert [r.rows for r in later] == [int((records["ts"] < evening).sum()) - 600]
    assert len(store.window_rows("m")) == 2  # the partial window replaced, not duplicated
    store.dispose()


def test_records_short_of_a_full_count_window_are_named_as_waiting(tmp_path: Path) -> None:
    records = _records(days=1, n_per_day=1_200, features=1, shift_from=99)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    monitor = Monitor(
        FrameRecordSource(records),
        StaticReferences({("m", 2): _reference(records)}),
        store,
        MonitoringConfig(window_by="count", window_size="500", alerts=()),
    )
    assert len(monitor.run_once(pd.Timestamp("2025-03-02", tz="UTC").to_pydatetime())) == 2
    (skipped,) = monitor.skipped
    assert skipped.reason == "filling"
    assert "200 record(s) after the last full window" in skipped.message
    store.dispose()


def test_a_monitor_without_records_in_its_lookback_says_where_they_are(tmp_path: Path) -> None:
    records = _records(days=1, n_per_day=50, features=1, shift_from=99)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    monitor = Monitor(
        FrameRecordSource(records),
        StaticReferences({}),
        store,
        MonitoringConfig(alerts=()),
    )
    assert monitor.run_once(pd.Timestamp("2025-02-01", tz="UTC").to_pydatetime()) == []
    (skipped,) = monitor.skipped
    assert skipped.reason == "no-records"
    assert "no records from 2025-01-18 00:00 to 2025-02-01 00:00 UTC" in skipped.message
    assert "50 record(s) are later, from 2025-03-01" in skipped.message
    assert monitor.run_once(pd.Timestamp("2025-03-02", tz="UTC").to_pydatetime()) == []
    assert [s.reason for s in monitor.skipped] == ["no-reference"]
    store.dispose()


def test_the_html_report_of_500_features_is_self_contained_and_small(tmp_path: Path) -> None:
    records = _records(days=6, n_per_day=300, features=500, shift_from=4)
    reference = _reference(records[records["ts"] < pd.Timestamp("2025-03-03", tz="UTC")])
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    Monitor(
        FrameRecordSource(records),
        StaticReferences({("m", 2): reference}),
        store,
        MonitoringConfig(alerts=()),
    ).run_once(pd.Timestamp("2025-03-07", tz="UTC"))
    path = write_html_report(tmp_path / "report.html", store=store, model="m")
    page = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 600_000  # about 0.8 KB per feature
    assert page.count("<svg") >= 2 * 500  # a histogram and a trend per feature
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page
    assert "data-drift" in page
    store.dispose()


class _AuditLike:
    """Reads like driftloop.audit's AuditLog.window: text versions, a label_ts column."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.assign(version=frame["version"].astype(str), label_ts=pd.NaT)
        self.calls: list[tuple[object, ...]] = []

    def window(self, start, end, *, model=None, version=None) -> pd.DataFrame:
        self.calls.append((start, end, model))
        f = self.frame
        return f[(f["ts"] >= start) & (f["ts"] < end) & (f["model"] == model)]


def test_the_audit_log_plugs_in_as_a_record_source(tmp_path: Path) -> None:
    records = _records(days=2, n_per_day=600, features=2, shift_from=1)
    log = _AuditLike(records)
    source = AuditRecordSource(log, models=["m"])
    assert isinstance(source, RecordSource)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    reference = _reference(records[records["ts"] < pd.Timestamp("2025-03-02", tz="UTC")])
    reports = Monitor(
        source, StaticReferences({("m", 2): reference}), store, MonitoringConfig(alerts=())
    ).run_once(pd.Timestamp("2025-03-03", tz="UTC"))
    assert [r.verdict for r in reports] == ["no-drift", "data-drift"]
    assert log.calls[0][2] == "m"
    store.dispose()


def test_records_without_a_numeric_version_are_refused(tmp_path: Path) -> None:
    records = _records(days=1, n_per_day=300, features=1, shift_from=9).assign(version="v2")
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    monitor = Monitor(
        FrameRecordSource(records), StaticReferences({}), store, MonitoringConfig(alerts=())
    )
    with pytest.raises(SchemaMismatchError, match="'v2'"):
        monitor.run_once(pd.Timestamp("2025-03-02", tz="UTC"))
    store.dispose()


def _headline(page: str) -> str:
    return page.split("</h1>", 1)[1].split("</p>", 1)[0]


def test_the_html_headline_is_the_newest_window_with_enough_data(tmp_path: Path) -> None:
    # v2 drifts on day 3; then v3 serves 4 records on day 4: too few to judge.
    records = _records(days=3, n_per_day=300, features=3, shift_from=2)
    tiny = _records(days=1, n_per_day=4, features=3, shift_from=99, seed=1)
    tiny = tiny.assign(version=3, ts=tiny["ts"] + pd.Timedelta(days=3))
    reference = _reference(records[records["ts"] < pd.Timestamp("2025-03-02", tz="UTC")])
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    Monitor(
        FrameRecordSource(pd.concat([records, tiny], ignore_index=True)),
        StaticReferences({("m", 2): reference, ("m", 3): reference}),
        store,
        MonitoringConfig(alerts=()),
    ).run_once(pd.Timestamp("2025-03-05", tz="UTC"))
    page = write_html_report(tmp_path / "r.html", store=store, model="m").read_text()
    headline = _headline(page)
    assert "Window 2025-03-03 00:00 to 2025-03-04 00:00 UTC, version 2" in headline
    assert "data-drift" in headline
    assert "Newer: 1 window(s) with too few records to judge" in page
    over_time = page.split("<h2>Over time", 1)[1].split("<h2>Features", 1)[0]
    assert over_time.count("<tr>") == 1 + 4  # the heading and every window
    assert over_time.count("<rect") == 4  # one verdict mark per window
    assert "<polyline" in over_time  # score PSI of the three judged windows
    assert "<details" not in over_time  # nothing collapsed
    features = page.split("<h2>Features", 1)[1]
    assert "(3 drifted of 4)" in features  # the drifted window's features, not v3's
    f000 = features.split("<td>f000</td>", 1)[1].split("</tr>", 1)[0]
    assert f000.startswith("<td>1.108</td>")  # its PSI on day 3
    trend = f000.rsplit('points="', 1)[1].split('"', 1)[0]
    # PSI per window, one slot each: days 1-3 drawn, v3's 4 records (no PSI) a gap at the end
    assert [point.split(",")[0] for point in trend.split()] == ["0", "40", "80"]
    store.dispose()


def test_the_html_page_of_two_frames_has_no_empty_window_fields(tmp_path: Path) -> None:
    records = _records(days=2, n_per_day=300, features=2, shift_from=1)
    features = ["f000", "f001"]
    before = records[records["ts"] < pd.Timestamp("2025-03-02", tz="UTC")]
    after = records[records["ts"] >= pd.Timestamp("2025-03-02", tz="UTC")]
    report = drift_report(before, after, features=features, score=None, label=None)
    page = write_html_report(tmp_path / "c.html", reports=[report]).read_text()
    headline = _headline(page)
    where = headline.split(": ", 1)[0]
    assert where == "<p>300 rows"  # no window, version or route to name
    assert "<circle" in page  # a single window is still drawn over time
