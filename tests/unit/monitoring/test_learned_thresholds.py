"""Thresholds learned from the reference period catch what a fixed threshold misses, stay
quiet on stable traffic, and performance is estimated before labels for binary models only.

The data are generated: a calibrated logistic model over two numeric inputs and one
category, its scores the true probabilities of its labels (before any drift), in count
windows of 40,000 records; on such windows ROC AUC varies by about 0.0025 from window to
window, so a drop of 0.015 is six standard deviations and a third of the fixed 0.05.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy.special import expit

from driftloop.core.config import LoopPolicy, MonitoringConfig, Triggers
from driftloop.loop import RolloutState, due_trigger
from driftloop.monitoring import (
    AlertManager,
    FileAlertSink,
    FrameRecordSource,
    Monitor,
    MonitoringStore,
    Reference,
    StaticReferences,
    assess,
    drift_report,
    learn_bands,
    learn_reference,
    print_report,
    write_html_report,
)
from driftloop.stats import Profile, compare_to_profile

SIZE = 40_000
START = pd.Timestamp("2026-01-01", tz="UTC")
LEARNED = MonitoringConfig(
    window_by="count", window_size=str(SIZE), thresholds="learned", alerts=()
)
FIXED = LEARNED.model_copy(update={"thresholds": "fixed"})


def records(
    seed: int, n: int = SIZE, *, spread: float = 1.0, concept: float = 1.0, offset: int = 0
) -> pd.DataFrame:
    """``n`` prediction records. ``spread`` < 1 narrows the main input (covariate drift:
    the model is less sure, and right about it); ``concept`` < 1 weakens that input's
    link to the labels (the scores no longer tell the truth)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0.0, spread, n)
    x2 = rng.normal(0.0, 1.0, n)
    group = rng.choice(np.array(["a", "b", "c"]), n, p=[0.5, 0.3, 0.2])
    base = -1.5 + 0.8 * x2 + 0.3 * (group == "b")
    score = expit(base + 1.2 * x1)
    label = (rng.random(n) < expit(base + 1.2 * concept * x1)).astype(np.float64)
    ts = START + pd.to_timedelta(offset + np.arange(n), unit="s")
    return pd.DataFrame(
        {
            "prediction_id": [f"{seed}-{i}" for i in range(n)],
            "ts": ts,
            "model": "m",
            "version": 1,
            "route": "champion",
            "score": score,
            "decision": np.where(score >= 0.5, "flag", "pass"),
            "label": label,
            "x1": x1,
            "x2": x2,
            "group": group,
        }
    )


def reference_period(windows: int = 12) -> pd.DataFrame:
    return pd.concat([records(100 + i, offset=i * SIZE) for i in range(windows)])


@pytest.fixture(scope="module")
def learned() -> Reference:
    period = reference_period()
    start = Reference(Profile.from_frame(period[["x1", "x2", "group"]]))
    return learn_reference(period, start, LEARNED)


def test_bands_are_learned_per_statistic_and_metric(learned: Reference) -> None:
    bands = learned.bands
    assert bands is not None
    assert bands.windows == 12
    assert bands.rows == SIZE
    assert {("x1", "psi"), ("group", "jensen_shannon"), ("score", "psi")} <= set(bands.drift)
    assert bands.performance["roc_auc"].side == "lower"
    assert bands.performance["log_loss"].side == "upper"
    assert bands.performance["roc_auc"].std < 0.005
    assert bands.estimated["roc_auc"].std < 0.005
    assert bands.calibration is not None


@pytest.mark.parametrize("seed", range(5))
def test_stable_windows_after_the_reference_period_raise_no_alert(
    learned: Reference, seed: int
) -> None:
    window = records(200 + seed)
    report = assess(learned, window, LEARNED)
    assert report.verdict == "no-drift", report.reasons
    assert report.thresholds == "learned"
    unlabelled = assess(learned, window.assign(label=np.nan), LEARNED)
    assert unlabelled.verdict == "no-drift", unlabelled.reasons


def test_the_reference_period_itself_raises_no_alert(learned: Reference) -> None:
    for i in range(12):
        report = assess(learned, records(100 + i, offset=i * SIZE), LEARNED)
        assert report.verdict == "no-drift", report.reasons


def test_a_small_realized_auc_drop_is_caught_by_the_learned_band_not_the_fixed_one(
    learned: Reference,
) -> None:
    window = records(300, concept=0.88)
    fixed = assess(replace(learned, baseline=_baseline(learned)), window, FIXED)
    learnt = assess(learned, window, LEARNED)
    drop = learned.bands.performance["roc_auc"].mean - learnt.performance.roc_auc  # type: ignore[union-attr]
    assert 0.01 < drop < 0.02  # about 0.015
    assert fixed.verdict != "concept-drift"  # 0.015 < max_auc_drop 0.05
    assert learnt.verdict == "concept-drift", learnt.reasons
    assert "roc_auc" in learnt.dropped_metrics
    assert "learned band" in learnt.reasons[0]


def test_a_small_estimated_auc_drop_before_labels_is_caught_by_the_learned_band(
    learned: Reference,
) -> None:
    window = records(400, spread=0.87).assign(label=np.nan)
    learnt = assess(learned, window, LEARNED)
    fixed = assess(learned, window, FIXED)
    assert learnt.performance is None
    assert learnt.estimated is not None
    drop = learned.bands.estimated["roc_auc"].mean - learnt.estimated.roc_auc  # type: ignore[union-attr]
    assert 0.01 < drop < 0.02
    assert learnt.verdict == "estimated-drop", learnt.reasons
    assert "roc_auc" in learnt.estimated_drops
    assert fixed.verdict not in ("estimated-drop", "concept-drift")
    assert not fixed.estimated_drops
    # once labels arrive the realized metric judges: the estimate was right
    labelled = assess(learned, records(400, spread=0.87), LEARNED)
    assert labelled.verdict == "concept-drift"
    assert abs(labelled.performance.roc_auc - learnt.estimated.roc_auc) < 0.01  # type: ignore[union-attr]


def _baseline(reference: Reference):
    period = reference_period(3)
    return drift_report(period, period.iloc[:SIZE], config=FIXED).baseline


def test_reference_windows_are_judged_against_the_other_records_not_themselves() -> None:
    """The bias a band learned in-sample has: a window compared with a profile that holds
    its own records looks closer than any new window can."""
    period = reference_period()
    start = Reference(Profile.from_frame(period[["x1", "x2", "group"]]))
    band = learn_bands(period, start, LEARNED).drift[("x1", "psi")]
    whole = Profile.from_frame(period[["x1", "x2", "group"]])
    in_sample = [
        compare_to_profile(whole, period.iloc[i * SIZE : (i + 1) * SIZE]).value("psi", "x1")
        for i in range(12)
    ]
    fresh = [compare_to_profile(whole, records(500 + i)).value("psi", "x1") for i in range(6)]
    assert np.mean(in_sample) < 0.9 * np.mean(fresh)  # in-sample: biased low
    assert abs(band.mean - np.mean(fresh)) < 0.25 * np.mean(fresh)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_estimation_says_it_does_not_apply_beyond_binary_models(task: str) -> None:
    period = reference_period(2)
    reference = Reference(Profile.from_frame(period[["x1", "x2"]]), task=task)
    report = assess(reference, records(600), FIXED)
    assert report.estimated is None
    assert report.estimation_note.startswith(
        f"performance estimation does not apply to {task} models"
    )
    assert report.summary()["estimation_note"] == report.estimation_note


def test_an_uncalibrated_model_without_a_reference_period_is_not_estimated() -> None:
    def skewed(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(score=frame["score"] ** 0.2)  # same ranking, not probabilities

    frames = drift_report(skewed(reference_period(2)), skewed(records(700)))
    assert frames.baseline is not None
    assert frames.baseline.ece > 0.05
    assert frames.estimated is None
    assert "ECE" in frames.estimation_note


def test_the_monitor_learns_the_reference_from_the_first_windows_and_keeps_it(
    tmp_path: Path,
) -> None:
    live = pd.concat(
        [
            reference_period(6),
            records(800, offset=6 * SIZE),
            records(801, offset=7 * SIZE, concept=0.88),
        ]
    )
    start = Reference(Profile.from_frame(live[["x1", "x2", "group"]].iloc[:SIZE]))
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    config = LEARNED.model_copy(update={"lookback": "30D"})
    monitor = Monitor(
        FrameRecordSource(live),
        StaticReferences({("m", 1): start}),
        store,
        config,
        alerts=AlertManager(store, []),
    )
    reports = sorted(monitor.run_once(START + pd.Timedelta(days=10)), key=lambda r: r.start)
    assert [r.verdict for r in reports] == ["no-drift"] * 7 + ["concept-drift"]
    assert all(r.thresholds == "learned" for r in reports)
    kept = store.learned_reference("m", 1, "champion")
    assert kept is not None
    assert kept.bands is not None
    assert kept.bands.windows == 6
    banded = store.series("m", "roc_auc")
    assert banded["lower"].notna().all()
    estimated = store.series("m", "estimated_roc_auc")
    assert len(estimated) == 8
    out = write_html_report(tmp_path / "r.html", store=store, model="m")
    page = out.read_text()
    assert "estimated ROC AUC" in page
    assert "bands learned from the reference period" in page
    store.dispose()


def test_until_the_reference_period_is_labelled_the_fixed_thresholds_judge_and_say_so(
    tmp_path: Path,
) -> None:
    live = reference_period(6).assign(label=np.nan)
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    monitor = Monitor(
        FrameRecordSource(live),
        StaticReferences({("m", 1): Reference(Profile.from_frame(live[["x1", "x2"]]))}),
        store,
        LEARNED.model_copy(update={"lookback": "30D"}),
        alerts=AlertManager(store, []),
    )
    reports = monitor.run_once(START + pd.Timedelta(days=10))
    assert len(reports) == 6
    assert all(r.thresholds == "fixed" for r in reports)
    assert all(
        "0 of its monitoring.reference_windows 6 first windows" in r.reasons[-1] for r in reports
    )
    assert store.learned_reference("m", 1, "champion") is None
    store.dispose()


def test_the_console_shows_the_estimate_beside_the_realized_metric(
    learned: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    print_report(assess(learned, records(900), LEARNED), Console(width=120))
    out = capsys.readouterr().out
    assert "estimated ROC AUC" in out
    assert "(realized 0.8" in out
    assert "thresholds: learned bands" in out


def test_an_estimated_drop_opens_its_own_incident_and_alerts_once(
    learned: Reference, tmp_path: Path
) -> None:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    sink = tmp_path / "alerts.jsonl"
    manager = AlertManager(store, [FileAlertSink(sink)])
    for i in range(2):
        report = assess(learned, records(1000 + i, spread=0.87).assign(label=np.nan), LEARNED)
        placed = replace(
            report,
            model="m",
            version=1,
            route="champion",
            start=START + pd.Timedelta(days=i),
            end=START + pd.Timedelta(days=i + 1),
        )
        store.save(placed)
        manager.observe(placed)
    sent = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [a["kind"] for a in sent] == ["estimated-drop"]
    assert "estimated ROC AUC" in sent[0]["message"]
    # the loop's estimated-performance trigger reads the stored window
    policy = LoopPolicy(
        triggers=Triggers(drift_features=0, performance_windows=0, estimated_performance=True)
    )
    trigger = due_trigger(
        policy,
        RolloutState("m"),
        windows=store.window_rows("m"),
        champion=1,
        champion_since=None,
        now=(START + pd.Timedelta(days=3)).to_pydatetime(),
    )
    assert trigger is not None
    assert trigger.kind == "estimated-performance"
    assert "roc_auc" in trigger.numbers["estimate"]["dropped_metrics"]
    store.dispose()


def test_a_learned_reference_survives_its_json_form(learned: Reference) -> None:
    again = Reference.from_dict(json.loads(json.dumps(learned.to_dict())))
    assert again.bands is not None
    assert again.bands.drift == learned.bands.drift  # type: ignore[union-attr]
    window = records(1100)
    assert assess(again, window, LEARNED).estimated == assess(learned, window, LEARNED).estimated


def test_the_html_report_shows_the_estimate_before_labels_and_says_when_there_is_none(
    learned: Reference, tmp_path: Path
) -> None:
    unlabelled = assess(learned, records(1200).assign(label=np.nan), LEARNED)
    page = write_html_report(tmp_path / "b.html", reports=[unlabelled]).read_text()
    assert "no labels yet" in page
    assert "<th>estimated</th>" in page
    regression = Reference(learned.profile, task="regression")
    other = assess(regression, records(1201).assign(label=np.nan), FIXED)
    page = write_html_report(tmp_path / "r.html", reports=[other]).read_text()
    assert "performance estimation does not apply to regression models" in page


def test_drift_report_learns_its_bands_from_the_reference_frame() -> None:
    config = MonitoringConfig(thresholds="learned", alerts=())
    period = reference_period(8)
    report = drift_report(period, records(1300, concept=0.88), config=config)
    assert report.thresholds == "learned"
    assert report.bands is not None
    assert report.bands.windows == 8  # cut into windows of the current frame's size
    assert report.verdict == "concept-drift", report.reasons
    short = drift_report(reference_period(2), records(1301), config=config)
    assert short.thresholds == "fixed"
    assert "monitoring.reference_windows 6" in short.reasons[-1]


def test_raw_calibrated_scores_are_estimated_without_a_reference_period() -> None:
    """With fixed thresholds and no reference period, scores that estimate the held-out
    ROC AUC well are trusted as probabilities."""
    period = reference_period(2)
    report = drift_report(period, records(1400), config=FIXED)
    assert report.estimated is not None, report.estimation_note
    assert report.performance is not None
    assert abs(report.estimated.roc_auc - report.performance.roc_auc) < 0.01
