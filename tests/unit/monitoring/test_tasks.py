"""Monitoring of binary, multiclass and regression models, each judged on its own metric.

Generated records (not the fraud simulator), scored by the true model of their labels so
that a planted change is the only change: ``x`` drives the label; ``z``, ``channel`` and
``region`` do not. Planted data drift shifts ``z``, moves the ``channel`` mix and brings a
``region`` never seen in training; a planted performance drop shuffles the labels (they no
longer follow the features) and leaves the inputs alone.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from driftloop.core.config import MonitoringConfig
from driftloop.monitoring import (
    FrameRecordSource,
    Monitor,
    MonitoringStore,
    Performance,
    Reference,
    StaticReferences,
    assess,
    baseline_from_metrics,
    print_report,
    served_profile,
    write_html_report,
)
from driftloop.registry import Signature
from driftloop.stats import Outputs, Profile, compare_to_profile, evaluate

TASKS = ("binary", "multiclass", "regression")
CLASSES = {"binary": ("no", "yes"), "multiclass": ("basic", "plus", "pro"), "regression": ()}
METRIC_NAME = {"binary": "ROC AUC", "multiclass": "log loss", "regression": "RMSE"}
FEATURES = ["x", "z", "w", "flag", "channel", "region"]
RECORD = {"score": 0.5, "label": np.nan, "decision": "", "route": "champion"}


def _outputs(task: str, x: np.ndarray, flag: np.ndarray) -> Outputs:
    signal = 2.0 * x + 0.5 * flag
    if task == "binary":
        return Outputs("binary", 1 / (1 + np.exp(-(signal - 0.5))), CLASSES[task])
    if task == "multiclass":
        logits = np.stack([-signal, np.zeros_like(signal), signal], axis=1)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return Outputs("multiclass", p / p.sum(axis=1, keepdims=True), CLASSES[task])
    return Outputs("regression", 100.0 + 15.0 * signal)


def _labels(outputs: Outputs, rng: np.random.Generator) -> np.ndarray:
    if outputs.task == "binary":
        return (rng.random(len(outputs)) < outputs.raw).astype(float)
    if outputs.task == "multiclass":
        cumulative = outputs.raw.cumsum(axis=1)
        return (rng.random(len(outputs))[:, None] > cumulative).sum(axis=1).astype(float)
    return outputs.raw + rng.normal(0, 10.0, len(outputs))


def records(
    task: str,
    n: int = 3_000,
    *,
    seed: int = 0,
    data_drift: bool = False,
    concept: bool = False,
    outputs_column: bool = True,
    missing: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Prediction records as the audit log keeps them (labels encoded, booleans as
    numbers, categories as text), with the planted changes asked for."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    z = rng.normal(1.0 if data_drift else 0.0, 1, n)
    w = np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 3.0, n))  # 10% null, as trained
    flag = (rng.random(n) < 0.4).astype(float)
    mix = [0.2, 0.2, 0.6] if data_drift else [0.5, 0.4, 0.1]
    channel = rng.choice(["web", "app", "branch"], n, p=mix)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if data_drift:
        region[rng.random(n) < 0.15] = "central"  # never seen in training
    out = _outputs(task, x, flag)
    label = _labels(out, rng)
    if concept:
        label = rng.permutation(label)
    frame = pd.DataFrame(
        {
            "prediction_id": [f"{task}-{seed}-{i}" for i in range(n)],
            "ts": pd.Timestamp("2026-04-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
            "model": task,
            "version": 1,
            "route": "champion",
            "score": out.score,
            "decision": _decisions(out),
            "label": label,
            "x": x,
            "z": z,
            "w": w,
            "flag": flag,
            "channel": channel,
            "region": region,
        }
    )
    if outputs_column:
        frame["outputs"] = _outputs_column(out)
    if missing is not None:
        lists: list[list[str]] = [[] for _ in range(n)]
        for name, share in missing.items():
            for i in np.flatnonzero(rng.random(n) < share):
                lists[i].append(name)
        frame["missing"] = lists
    return frame


def _decisions(out: Outputs) -> list[str]:
    if out.task == "regression":
        return [""] * len(out)
    return [out.classes[i] for i in out.class_index]


def _outputs_column(out: Outputs) -> list[dict[str, object]]:
    if out.task == "regression":
        return [{"value": float(v)} for v in out.raw]
    if out.task == "binary":
        return [{"class": c} for c in _decisions(out)]
    return [
        {
            "class": out.classes[i],
            "probabilities": dict(zip(out.classes, map(float, row), strict=True)),
        }
        for i, row in zip(out.class_index, out.raw, strict=True)
    ]


def reference(task: str, metric: str | None = None) -> Reference:
    """What registration stores: the training inputs' profile with the held-out scores,
    the held-out metrics of ``stats.evaluate`` and (multiclass) the predicted-class mix."""
    train = records(task, 20_000, seed=100)
    held_out = records(task, 5_000, seed=101)
    out = _outputs(task, held_out["x"].to_numpy(), held_out["flag"].to_numpy())
    y = held_out["label"].to_numpy()
    metrics = evaluate(out, y.astype(int) if task != "regression" else y)
    profile = Profile.from_frame(train[FEATURES], predictions=out.score)
    baseline = baseline_from_metrics(
        metrics, threshold=0.5, task=task, classes=CLASSES[task], metric=metric
    )
    mix = {}
    if task == "multiclass":
        counts = np.bincount(out.class_index, minlength=3)
        mix = {c: int(k) for c, k in zip(CLASSES[task], counts, strict=True) if k}
    return Reference(profile, baseline, task, CLASSES[task], metric, mix)


@pytest.fixture(scope="module")
def references() -> dict[str, Reference]:
    return {task: reference(task) for task in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_a_window_like_the_reference_is_no_drift(task: str, references) -> None:
    report = assess(references[task], records(task, seed=1))
    assert report.verdict == "no-drift", report.reasons
    assert report.reasons == ()
    assert report.performance is not None
    assert (
        report.metric == {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
    )
    assert [c.dropped for c in report.checks] == [False] * (2 if task == "binary" else 1)


@pytest.mark.parametrize("task", TASKS)
def test_planted_input_drift_is_data_drift_naming_exactly_the_planted_features(
    task: str, references
) -> None:
    report = assess(references[task], records(task, seed=2, data_drift=True))
    assert report.verdict == "data-drift", report.reasons
    assert set(report.drifted_features) == {"z", "channel", "region"}
    assert report.unseen["region"].categories == ("central",)
    assert report.unseen["region"].share == pytest.approx(0.15, abs=0.02)
    unseen = [r for r in report.reasons if r.startswith("region: ")]
    assert unseen == [
        f"region: {report.unseen['region'].share:.0%} of values in categories never seen (central)"
    ]
    assert any(r.startswith("performance holds (") for r in report.reasons)
    assert report.dropped_metrics == ()


@pytest.mark.parametrize("task", TASKS)
def test_labels_that_stop_following_the_features_are_concept_drift_on_the_models_metric(
    task: str, references
) -> None:
    report = assess(references[task], records(task, seed=3, concept=True))
    assert report.verdict == "concept-drift", report.reasons
    assert report.drifted_features == ()
    metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
    assert metric in report.dropped_metrics
    first = report.reasons[0]
    assert first.startswith(f"{METRIC_NAME[task]} ")
    assert "vs reference" in first
    assert "standard errors" in first


def test_a_regression_window_never_reports_precision_or_recall(references, tmp_path) -> None:
    report = assess(references["regression"], records("regression", seed=4, concept=True))
    assert report.performance is not None
    assert set(report.performance.metrics) >= {"rmse", "mae", "r2", "rmse_se"}
    assert not [m for m in report.performance.metrics if "precision" in m or "recall" in m]
    assert "roc_auc" not in report.performance.metrics
    out = io.StringIO()
    print_report(report, Console(file=out, width=200))
    printed = out.getvalue()
    assert "realized RMSE" in printed
    assert printed.index("RMSE") < printed.index("MAE")
    page = write_html_report(tmp_path / "r.html", reports=[report]).read_text()
    for text in (printed, page, json.dumps(report.summary())):
        assert "precision" not in text
        assert "recall" not in text
        assert "ROC AUC" not in text
    assert "<th>RMSE</th>" in page


def test_multiclass_without_class_probabilities_is_judged_on_accuracy(references) -> None:
    ref = references["multiclass"]
    calm = assess(ref, records("multiclass", seed=5, outputs_column=False))
    assert calm.verdict == "no-drift", calm.reasons
    assert calm.performance is not None
    assert "log_loss" not in calm.performance.metrics
    assert "log loss unavailable" in calm.performance.note
    assert [c.metric for c in calm.checks] == ["accuracy"]
    shuffled = records("multiclass", seed=6, concept=True, outputs_column=False)
    report = assess(ref, shuffled)
    assert report.verdict == "concept-drift"
    assert report.dropped_metrics == ("accuracy",)
    assert report.reasons[0].startswith("accuracy ")


def test_a_moved_predicted_class_mix_is_named(references) -> None:
    window = records("multiclass", seed=7).assign(label=np.nan)
    calm = assess(references["multiclass"], window)
    assert calm.verdict == "no-drift"
    assert 0 <= calm.class_mix_drift < 0.05
    flipped = window.copy()
    flipped["outputs"] = [
        {**o, "class": "pro"} if o["class"] == "basic" else o for o in window["outputs"]
    ]
    report = assess(references["multiclass"], flipped)
    assert report.verdict == "data-drift"
    assert report.drifted_features == ()
    assert any(r.startswith("predicted-class mix moved (JS ") for r in report.reasons)
    assert any("realized performance unknown" in r for r in report.reasons)


@pytest.mark.parametrize("share", [0.03, 0.3])
def test_missing_features_are_a_reason_only_above_the_threshold(share: float, references) -> None:
    window = records("binary", seed=8, missing={"x": share, "w": 0.12})
    report = assess(references["binary"], window)
    assert report.missing_rates["x"] == pytest.approx(share, abs=0.02)
    assert report.missing_rates["w"] == pytest.approx(0.12, abs=0.02)
    missing_reasons = [r for r in report.reasons if " missing in " in r]
    if share < 0.05:
        assert report.verdict == "no-drift"
        assert missing_reasons == []  # w: 12% against 10% null in training is no news
    else:
        assert report.verdict == "data-drift"
        assert report.drifted_features == ("x",)
        assert missing_reasons == [f"x missing in {report.missing_rates['x']:.0%} of rows"]
    heavy = assess(references["binary"], records("binary", seed=9, missing={"w": 0.3}))
    rate = heavy.missing_rates["w"]
    assert f"w missing in {rate:.0%} of rows (10% null in training)" in heavy.reasons


def test_records_without_a_missing_column_skip_the_check(references) -> None:
    report = assess(references["binary"], records("binary", seed=10))
    assert report.missing_rates == {}
    assert "missing_rate" not in report.feature_frame().columns


def test_a_model_metric_without_standard_error_is_judged_on_the_tasks_default() -> None:
    ref = reference("regression", metric="r2")
    report = assess(ref, records("regression", seed=11, concept=True))
    assert report.verdict == "concept-drift"
    assert report.dropped_metrics == ("rmse",)


def test_thresholds_are_configurable_per_task(references) -> None:
    window = records("regression", seed=12, concept=True)
    lax = MonitoringConfig(max_error_increase=100.0)
    assert assess(references["regression"], window, lax).verdict == "no-drift"
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        MonitoringConfig(max_accuracy_drop=0.0)
    with pytest.raises(ValueError, match="max_missing_rate"):
        MonitoringConfig(max_missing_rate=1.5)


def test_a_boolean_that_training_profiled_as_text_is_compared_as_the_numbers_served() -> None:
    rng = np.random.default_rng(13)
    owned = pd.Series(rng.random(5_000) < 0.4, dtype=object)
    owned[rng.random(5_000) < 0.05] = None  # a nullable boolean column: profiled as text
    train = pd.DataFrame({"owns_home": owned, "x": rng.normal(0, 1, 5_000)})
    profile = Profile.from_frame(train)
    assert list(profile.categorical) == ["owns_home"]
    signature = Signature.infer(train)
    served = served_profile(profile, signature)
    assert list(served.numeric) == ["x", "owns_home"]
    assert served.numeric["owns_home"].nulls == profile.categorical["owns_home"].nulls
    window = pd.DataFrame(
        {"owns_home": (rng.random(2_000) < 0.4).astype(float), "x": rng.normal(0, 1, 2_000)}
    )
    assert compare_to_profile(served, window).status == {"x": "ok", "owns_home": "ok"}
    assert assess(Reference(served), window.assign(**RECORD)).verdict == "no-drift"
    # The text profile against numbers would call every window drifted.
    assert assess(Reference(profile), window.assign(**RECORD)).drifted_features


def test_a_category_never_seen_in_training_is_drift_for_psi_js_and_chi_square(references) -> None:
    window = records("binary", seed=14)
    window.loc[window.sample(frac=0.1, random_state=0).index, "region"] = "central"
    report = assess(references["binary"], window)
    table = report.features
    for statistic in ("psi", "jensen_shannon", "chi_square"):
        result = table.categorical_results[statistic]
        flagged = dict(zip(table.categorical.names, result.drifted, strict=True))
        assert flagged == {"channel": False, "region": True}, statistic
    assert report.verdict == "data-drift"
    assert report.drifted_features == ("region",)


def test_a_reference_file_of_an_earlier_version_still_reads_as_binary(references) -> None:
    profile = references["binary"].profile
    old = {
        "profile": profile.to_dict(),
        "baseline": {"labelled": 5000.0, "positives": 1500.0, "roc_auc": 0.86, "precision": 0.7,
                     "recall": 0.75, "ece": 0.01, "mean_score": 0.3, "positive_rate": 0.3},
    }  # fmt: skip
    reference = Reference.from_dict(old)
    assert reference.task == "binary"
    assert reference.baseline is not None
    assert (reference.baseline.roc_auc, reference.baseline.recall) == (0.86, 0.75)
    assert reference.baseline.positives == 1500
    assert assess(reference, records("binary", seed=15)).verdict == "no-drift"
    again = Reference.from_dict(json.loads(json.dumps(references["multiclass"].to_dict())))
    assert again == references["multiclass"]


def test_stored_windows_keep_each_tasks_metrics_and_the_page_shows_them(
    references, tmp_path
) -> None:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.db'}")
    frames = [records("multiclass", seed=16), records("multiclass", seed=17, concept=True)]
    frames[1]["ts"] += pd.Timedelta(days=1)
    monitor = Monitor(
        FrameRecordSource(pd.concat(frames)),
        StaticReferences({("multiclass", 1): references["multiclass"]}),
        store,
        MonitoringConfig(window_size="1D", alerts=()),
    )
    reports = monitor.run_once(pd.Timestamp("2026-04-03", tz="UTC"))
    assert [r.verdict for r in reports] == ["no-drift", "concept-drift"]
    series = store.series("multiclass", "log_loss")
    assert series["drifted"].tolist() == [False, True]
    stored = [json.loads(w["summary"]) for w in store.window_rows("multiclass")]
    assert Performance.from_dict(stored[1]["performance"]) == reports[1].performance
    assert stored[1]["checks"][0]["metric"] == "log_loss"
    page = write_html_report(tmp_path / "m.html", store=store, model="multiclass").read_text()
    assert "<th>log loss</th>" in page
    assert "ROC AUC" not in page
    assert "predicted_class" in page
    store.dispose()
