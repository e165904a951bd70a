"""Learning a version's alert bands from the records of its reference period.

The reference period is a stretch of records on which the model performed as it should
(its held-out data, or its first weeks of serving), with scores and, for the performance
bands, labels. :func:`learn_bands` cuts it into windows of the same size as the monitor's
(``[monitoring] window_*``), computes on each what the monitor computes on a live window,
and turns each statistic's spread over those windows into a band
(:func:`driftloop.stats.learn_band`, ``band_sigmas`` standard deviations).

Each reference window's drift statistics are computed against a profile of the *other*
reference records, never one that includes the window itself: a window compared with a
profile holding its own rows looks closer to it than a live window can, so its statistics
would be biased low and the band too tight (alerts on stable traffic).

>>> import numpy as np, pandas as pd
>>> from driftloop.core.config import MonitoringConfig
>>> from driftloop.monitoring import Reference
>>> from driftloop.stats import Profile
>>> rng = np.random.default_rng(0)
>>> p = rng.beta(1, 6, 6_000)
>>> period = pd.DataFrame({"x": rng.normal(0, 1, 6_000), "score": p,
...                        "label": (rng.random(6_000) < p).astype(float)})
>>> reference = Reference(Profile.from_frame(period[["x"]], predictions=p))
>>> config = MonitoringConfig(window_by="count", window_size="500", min_rows=100)
>>> bands = learn_bands(period, reference, config)
>>> bands.windows, sorted(bands.estimated)
(12, ['positive_rate', 'precision_at_0.5', 'recall_at_0.5', 'roc_auc'])
>>> bands.drift[("x", "psi")].side, bands.performance["roc_auc"].side
('upper', 'lower')
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import TypeVar

import numpy as np
import pandas as pd

from driftloop.core.config import MonitoringConfig
from driftloop.core.errors import InvalidParameterError
from driftloop.monitoring._bands import Bands, metric_side
from driftloop.monitoring._estimated import estimated_performance
from driftloop.monitoring._inputs import as_profiled
from driftloop.monitoring._outputs import predicted_classes
from driftloop.monitoring._performance import window_performance
from driftloop.monitoring._references import Reference
from driftloop.monitoring._report import outputs_drift, statistics_for
from driftloop.monitoring._windows import WindowSpec, windows
from driftloop.stats import (
    Band,
    BandSide,
    Calibration,
    DriftTable,
    Profile,
    compare_to_profile,
    fit_calibration,
    learn_band,
)

__all__ = ["learn_bands", "learn_reference", "window_spec"]

K = TypeVar("K")


def window_spec(config: MonitoringConfig) -> WindowSpec:
    """The monitor's windows as ``config`` sets them."""
    step = config.window_step
    if config.window_by == "count":
        return WindowSpec("count", int(config.window_size), int(step) if step is not None else None)
    return WindowSpec("time", config.window_size, step)


def _chunks(records: pd.DataFrame, spec: WindowSpec) -> Iterator[pd.DataFrame]:
    if "ts" in records.columns:
        records = records.sort_values("ts", kind="stable").reset_index(drop=True)
        yield from (w.records for w in windows(records, spec))
        return
    if spec.by != "count":
        raise InvalidParameterError("Time windows need the records' 'ts' column.")
    size = int(spec.size)
    step = int(spec.step if spec.step is not None else size)
    for lo in range(0, len(records) - size + 1, step):
        yield records.iloc[lo : lo + size]


def learn_bands(
    records: pd.DataFrame,
    reference: Reference,
    config: MonitoringConfig | None = None,
    *,
    spec: WindowSpec | None = None,
    score: str = "score",
    label: str = "label",
    bins: int = 20,
) -> Bands:
    """The bands of ``reference``'s version learned from ``records`` of its reference
    period, cut into windows of ``spec`` (by default the monitor's, from ``config``);
    windows with fewer than ``min_rows`` records are left out. A statistic gets a band
    when ``reference_windows`` windows at least gave it a value (a performance metric:
    windows with ``min_labelled`` labels). Raises :class:`~driftloop.core.errors.
    InvalidParameterError` when fewer than ``reference_windows`` windows are full enough.
    """
    config = config or MonitoringConfig()
    spec = spec or window_spec(config)
    records = as_profiled(records.reset_index(drop=True), reference.profile)
    chunks = [c for c in _chunks(records, spec) if len(c) >= config.min_rows]
    if len(chunks) < config.reference_windows:
        raise InvalidParameterError(
            f"The reference period has {len(chunks)} window(s) of {spec.size} with "
            f"monitoring.min_rows {config.min_rows} records or more; learning bands needs "
            f"monitoring.reference_windows {config.reference_windows}."
        )
    features = [f for f in reference.profile.features if f in records.columns]
    stats = statistics_for(config)
    drift: dict[tuple[str, str], list[float]] = defaultdict(list)
    realized: dict[str, list[float]] = defaultdict(list)
    estimated: dict[str, list[float]] = defaultdict(list)
    calibrated = reference.task == "binary" and label in records.columns
    for chunk in chunks:
        others = records.drop(index=chunk.index)  # never the window's own records
        profile = Profile.from_frame(
            others[features],
            predictions=others[score].to_numpy(dtype=np.float64, na_value=np.nan)
            if score in others.columns
            else None,
            bins=bins,
        )
        tables = [compare_to_profile(profile, chunk, statistics=stats, min_rows=config.min_rows)]
        mix = _class_mix(others, reference)
        rest = Reference(profile, None, reference.task, reference.classes, None, mix)
        prediction = outputs_drift(rest, chunk, stats, config, score)
        if prediction is not None:
            tables.append(prediction)
        for key, value in _statistics(tables):
            drift[key].append(value)
        performance = window_performance(
            chunk,
            task=reference.task,
            classes=reference.classes,
            threshold=config.decision_threshold,
            min_labelled=config.min_labelled,
            score=score,
            label=label,
        )
        if performance is not None:
            for name, value in performance.metrics.items():
                if not name.endswith("_se"):
                    realized[name].append(value)
        guess, _ = estimated_performance(
            chunk,
            task=reference.task,
            threshold=config.decision_threshold,
            score=score,
            ece=reference.baseline.ece if reference.baseline is not None else math.nan,
            max_ece=config.estimation_max_ece,
            calibration=_calibration(others, score, label, config) if calibrated else None,
        )
        if guess is not None:
            for name, value in guess.metrics.items():
                if name != "mean_score":
                    estimated[name].append(value)
    rows = int(np.median([len(c) for c in chunks]))
    return Bands(
        len(chunks),
        rows,
        _banded(realized, config, metric_side),
        _banded(estimated, config, metric_side),
        _banded(drift, config, _upper, lambda key: _floor(key[1], config)),
        _calibration(records, score, label, config) if calibrated else None,
    )


def learn_reference(
    records: pd.DataFrame,
    reference: Reference,
    config: MonitoringConfig | None = None,
    *,
    spec: WindowSpec | None = None,
    score: str = "score",
    label: str = "label",
    bins: int = 20,
) -> Reference:
    """``reference`` made of its reference period ``records``: their profile (inputs and
    scores) and, for a multiclass model, predicted-class mix, with the bands of
    :func:`learn_bands`, so that live windows are compared with the same records the
    bands were learned on. The task and the registered baseline are kept."""
    config = config or MonitoringConfig()
    bands = learn_bands(records, reference, config, spec=spec, score=score, label=label, bins=bins)
    records = as_profiled(records.reset_index(drop=True), reference.profile)
    features = [f for f in reference.profile.features if f in records.columns]
    profile = Profile.from_frame(
        records[features],
        predictions=records[score].to_numpy(dtype=np.float64, na_value=np.nan)
        if score in records.columns
        else None,
        bins=bins,
    )
    mix = _class_mix(records, reference) or dict(reference.prediction_classes)
    return replace(reference, profile=profile, prediction_classes=mix, bands=bands)


def _calibration(
    records: pd.DataFrame, score: str, label: str, config: MonitoringConfig
) -> Calibration | None:
    """The scores' calibration on the labelled ``records`` (None with fewer than
    ``min_labelled`` of them, or with scores or labels of one value only)."""
    labels = records[label].to_numpy(dtype=np.float64, na_value=np.nan)
    scores = records[score].to_numpy(dtype=np.float64, na_value=np.nan)
    known = np.isfinite(labels) & np.isfinite(scores)
    if int(known.sum()) < config.min_labelled or np.unique(labels[known]).size < 2:
        return None
    return fit_calibration(scores[known], labels[known], bins=config.calibration_bins)


def _upper(_key: tuple[str, str]) -> BandSide:
    return "upper"


def _class_mix(others: pd.DataFrame, reference: Reference) -> dict[str, int]:
    if reference.task != "multiclass":
        return {}
    classes = predicted_classes(others, reference.classes)
    if classes is None:
        return {}
    counts = classes.value_counts()
    return {str(c): int(counts[c]) for c in reference.classes if c in counts.index}


def _statistics(tables: list[DriftTable]) -> Iterator[tuple[tuple[str, str], float]]:
    for table in tables:
        long = table.to_frame().dropna(subset=["statistic"])
        long = long[long["status"] == "ok"]
        for feature, statistic, value in zip(
            long["feature"], long["statistic"], long["value"], strict=True
        ):
            if math.isfinite(value):
                yield (str(feature), str(statistic)), float(value)


def _banded(
    values: Mapping[K, list[float]],
    config: MonitoringConfig,
    side: Callable[[K], BandSide],
    floor: Callable[[K], float] = lambda _key: 0.0,
) -> dict[K, Band]:
    out: dict[K, Band] = {}
    for key, seen in values.items():
        finite = [v for v in seen if math.isfinite(v)]
        if len(finite) >= config.reference_windows:
            out[key] = learn_band(
                finite, sigmas=config.band_sigmas, side=side(key), min_width=floor(key)
            )
    return out


_FIXED = {
    "psi": "psi_threshold",
    "jensen_shannon": "js_threshold",
    "kl_divergence": "kl_threshold",
    "wasserstein": "wasserstein_threshold",
}


def _floor(statistic: str, config: MonitoringConfig) -> float:
    """The least width of a drift band: ``band_floor`` of the statistic's fixed threshold
    (none for KS and chi-square, whose thresholds are p-values)."""
    name = _FIXED.get(statistic)
    return config.band_floor * float(getattr(config, name)) if name else 0.0
