"""A challenger against its champion on the same live traffic, read from the audit log.

The server audits every answer under the version that gave it and a route (see
``docs/traffic.md``): ``v1``/``v2`` for a version's own answer, ``shadow`` for a shadow's
copy (its id the primary's with ``:shadow`` appended), ``v1:champion`` for the champion
answering because the picked arm failed (it raised, or its breaker is open), and
``v1:rules``/``v1:default`` for the fallback answering because the champion failed. So,
from one window of records:

* **canary** (the challenger answers some live requests): each arm's requests are its own
  answers plus its failures (the challenger's: ``:champion`` rows; the champion's:
  ``:rules``/``:default`` rows); both arms see the same traffic at the same time;
* **shadow** (the challenger only scores copies): its rows are paired with the primary's
  by id, row by row; ``coverage`` is the share of primary answers with a shadow copy (a
  shadow that raises, or whose copies are dropped, covers less), ``disagreement`` the share
  of pairs whose answers differ.

Per arm: requests, errors, latency percentiles, mean score and, once labels arrived, the
task's realized metrics (:func:`~driftloop.monitoring.window_performance`). Between arms:
the score distribution's shift (PSI and KS from :mod:`driftloop.stats`) and always-valid
sequential tests (:func:`~driftloop.stats.sequential_proportions`, ``..._means``; for a
shadow, pair by pair, :func:`~driftloop.stats.sequential_paired`) of the error rate and of
per-row label metrics: accuracy and log loss (binary), accuracy (multiclass), absolute and
squared error (regression), and the hit rate of recommended lists (``recommendation``: a
list is a hit when its feedback label, a click or a rating, is at least ``hit_label``;
unlabelled lists are left out; see ``_arm_rows.py``). The verdict is
:func:`~driftloop.monitoring.verdict`'s (``_rollout.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.audit import AuditLog
from driftloop.core.errors import InvalidParameterError
from driftloop.monitoring._arm_limits import ArmLimits
from driftloop.monitoring._arm_rows import hits, label_tests, pair_disagreement, served_order
from driftloop.monitoring._performance import window_performance
from driftloop.stats import (
    TASKS,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    SequentialTest,
    compare_frames,
    sequential_proportions,
)

__all__ = ["ArmComparison", "ArmStats", "ScoreShift", "compare_arms", "finite"]

Stage = Literal["canary", "shadow", "none"]
_KNOWN = (*TASKS, "recommendation")  # the tabular tasks, and recommended lists


def finite(value: float) -> float | None:
    """A number as JSON keeps it: NaN and infinities as None."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class ArmStats:
    """One arm: the ``requests`` routed to it, ``errors`` among them (answered by the next
    link of the chain), latency percentiles in ms and mean score of its answers, and its
    realized ``metrics`` on the ``labelled`` ones (empty before labels arrive)."""

    version: str
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_score: float
    labelled: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return self.requests - self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": finite(self.error_rate),
            "p50_ms": finite(self.p50_ms),
            "p99_ms": finite(self.p99_ms),
            "mean_score": finite(self.mean_score),
            "labelled": self.labelled,
            "metrics": {k: v for k, v in self.metrics.items() if math.isfinite(v)},
        }


@dataclass(frozen=True)
class ScoreShift:
    """How far the challenger's scores moved from the champion's: PSI over the champion's
    quantile bins and the two-sample KS statistic and p-value (NaN with too few rows)."""

    psi: float
    ks: float
    ks_p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": finite(self.psi),
            "ks": finite(self.ks),
            "ks_p_value": finite(self.ks_p_value),
        }


@dataclass(frozen=True)
class ArmComparison:
    """The challenger against the champion over ``[since, until)`` (see the module docs).
    ``tests`` are the sequential tests by name: ``errors`` (canary), then the task's
    label metrics (``accuracy``, ``log_loss``, ``absolute_error``, ``squared_error``,
    ``hit_rate``), taken with ``limits`` (their level and margins)."""

    model: str
    stage: Stage
    task: str
    since: datetime
    until: datetime
    champion: ArmStats
    challenger: ArmStats
    shift: ScoreShift
    tests: Mapping[str, SequentialTest] = field(default_factory=dict)
    limits: ArmLimits = field(default_factory=ArmLimits)
    primary: int = 0
    paired: int = 0
    disagreement: float = math.nan
    coverage: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every number an int, a float or None."""
        return {
            "model": self.model,
            "stage": self.stage,
            "task": self.task,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "shift": self.shift.to_dict(),
            "tests": {name: test.to_dict() for name, test in self.tests.items()},
            "limits": self.limits.to_dict(),
            "primary": self.primary,
            "paired": self.paired,
            "disagreement": finite(self.disagreement),
            "coverage": finite(self.coverage),
        }


def compare_arms(
    audit: AuditLog,
    model: str,
    champion: str | int,
    challenger: str | int,
    since: datetime,
    until: datetime | None = None,
    *,
    task: str | None = None,
    classes: Sequence[str] = (),
    threshold: float = 0.5,
    hit_label: float = 1.0,
    limits: ArmLimits | None = None,
    stage: Stage | None = None,
) -> ArmComparison:
    """Compare ``challenger`` with ``champion`` (versions of ``model``) on the records
    with ``since <= ts < until`` (``until``: now).

    ``task`` (and a multiclass model's ``classes``) default to what the records say
    (``recommendation`` for a recommender's lists); ``threshold`` is a binary model's
    decision threshold. ``hit_label`` is the feedback label from which a recommended
    list counts as hit (1: a click labelled 1, a list shown and not clicked 0; 4: a
    rating of 4 or 5 stars); a list no feedback labelled yet counts neither way (it is
    left out, as unlabelled rows of every task are). ``limits`` give the sequential
    tests' level and non-inferiority margins, the disagreement tolerance and the rows the
    score shift needs (:class:`ArmLimits`; the same the verdict is taken with).
    ``stage`` is the step the traffic policy is in, when known: a shadow that fails
    writes no record, so only a caller that knows it shadows sees its coverage fall to 0
    (None: the records say, ``canary`` when the challenger answered or failed live
    requests, ``shadow`` when it has shadow copies, else ``none``).
    """
    limits = limits or ArmLimits()
    end = until if until is not None else datetime.now(UTC)
    frame = audit.window(since, end, model=model)
    mine, theirs = str(challenger), str(champion)
    route = frame["route"].astype(str)
    # the fallback link after "v1:" ("model" when none); str.split keeps an empty window's
    # frame shape (str.partition of no rows has no columns)
    link = route.str.split(":", n=1).str[1].where(route.str.contains(":", regex=False), "model")
    version = frame["version"].astype(str)
    shadow = route == "shadow"
    own = ~shadow & (link == "model")
    champ = frame[own & (version == theirs)]
    champ_failed = frame[~shadow & link.isin(["rules", "default"])]
    live = frame[own & (version == mine)]
    live_failed = frame[~shadow & (link == "champion")]
    copies = frame[shadow & (version == mine)]
    task = task or _task_of(frame)
    if task not in _KNOWN:
        raise InvalidParameterError(f"Unknown task '{task}'. Known: {', '.join(_KNOWN)}.")
    classes = tuple(classes) or _classes_of(frame)
    if stage is None:
        stage = "canary" if len(live) or len(live_failed) else "shadow" if len(copies) else "none"
    tests: dict[str, SequentialTest] = {}
    primary, paired, disagreement, coverage = 0, 0, math.nan, math.nan
    if stage == "shadow":
        primary = len(champ)
        champ, challenger_rows = _pairs(champ, copies)
        paired, coverage = len(champ), len(champ) / primary if primary else math.nan
        disagreement = pair_disagreement(
            champ, challenger_rows, task, classes, threshold, limits.disagreement_tolerance
        )
        failed = 0
    else:
        challenger_rows, failed = live, len(live_failed)
        tests["errors"] = sequential_proportions(
            _failures(champ, champ_failed),
            _failures(live, live_failed),
            higher_is_better=False,
            margin=limits.margin("errors", 0.0),
            alpha=limits.alpha,
            champion_order=np.concatenate([served_order(champ), served_order(champ_failed)]),
            challenger_order=np.concatenate([served_order(live), served_order(live_failed)]),
        )
    tests.update(
        label_tests(
            champ,
            challenger_rows,
            task,
            classes,
            threshold,
            limits,
            paired=stage == "shadow",
            hit_label=hit_label,
        )
    )
    return ArmComparison(
        model=model,
        stage=stage,
        task=task,
        since=since,
        until=end,
        champion=_arm(theirs, champ, len(champ_failed), task, classes, threshold, hit_label),
        challenger=_arm(
            mine, challenger_rows, failed, task, classes, threshold, hit_label, stage == "shadow"
        ),
        shift=_shift(champ["score"], challenger_rows["score"], limits.min_shift_rows),
        tests=tests,
        limits=limits,
        primary=primary,
        paired=paired,
        disagreement=disagreement,
        coverage=coverage,
    )


def _task_of(frame: pd.DataFrame) -> str:
    """What the records' outputs say: a list of items (recommendation), a value
    (regression), classes (multiclass), or none (binary)."""
    for outputs in frame["outputs"]:
        if isinstance(outputs, Mapping):
            if "items" in outputs:
                return "recommendation"
            return "regression" if "value" in outputs else "multiclass"
    return "binary"


def _classes_of(frame: pd.DataFrame) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for outputs in frame["outputs"]:
        if isinstance(outputs, Mapping) and isinstance(outputs.get("probabilities"), Mapping):
            names.update(dict.fromkeys(str(c) for c in outputs["probabilities"]))
    return tuple(names)


def _failures(answered: pd.DataFrame, failed: pd.DataFrame) -> NDArray[np.float64]:
    """0 per answered request, 1 per failed one (in that order, as their orders are)."""
    return np.concatenate([np.zeros(len(answered)), np.ones(len(failed))])


def _pairs(primary: pd.DataFrame, copies: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The primary answers with a shadow copy and the copies, aligned row by row; each
    copy takes its primary's label (feedback labels the primary's id)."""
    ids = copies["prediction_id"].astype(str).str.removesuffix(":shadow")
    keyed = copies.assign(_primary=ids.to_numpy()).drop_duplicates("_primary")
    found = primary[primary["prediction_id"].isin(keyed["_primary"])]
    matched = keyed.set_index("_primary").loc[found["prediction_id"].to_numpy()]
    matched = matched.assign(label=found["label"].to_numpy(), label_ts=found["label_ts"].to_numpy())
    return found, matched.reset_index(drop=True)


def _arm(
    version: str,
    answered: pd.DataFrame,
    errors: int,
    task: str,
    classes: Sequence[str],
    threshold: float,
    hit_label: float,
    copies: bool = False,
) -> ArmStats:
    """One arm's numbers; ``copies``: its rows are a shadow's, whose lists no one saw (so
    a recommender's shadow has no hit rate)."""
    latency = answered["latency_ms"].to_numpy(np.float64)
    p50, p99 = (
        (float(np.percentile(latency, 50)), float(np.percentile(latency, 99)))
        if len(latency)
        else (math.nan, math.nan)
    )
    labelled, metrics = 0, {}
    if task == "recommendation":
        hit = np.zeros(0) if copies else hits(answered, hit_label)
        labelled, metrics = len(hit), ({"hit_rate": float(hit.mean())} if len(hit) else {})
    else:
        performance = window_performance(answered, task=task, classes=classes, threshold=threshold)
        if performance is not None:
            labelled, metrics = performance.labelled, dict(performance.metrics)
    return ArmStats(
        version=version,
        requests=len(answered) + errors,
        errors=errors,
        p50_ms=p50,
        p99_ms=p99,
        mean_score=float(answered["score"].mean()) if len(answered) else math.nan,
        labelled=labelled,
        metrics=metrics,
    )


def _shift(champion: pd.Series, challenger: pd.Series, min_rows: int) -> ScoreShift:
    reference, current = champion.dropna(), challenger.dropna()
    if len(reference) < min_rows or len(current) < min_rows:
        return ScoreShift(math.nan, math.nan, math.nan)
    table = compare_frames(
        pd.DataFrame({"score": reference.to_numpy()}),
        pd.DataFrame({"score": current.to_numpy()}),
        statistics=(PopulationStabilityIndex(), KolmogorovSmirnov(method="asymp")),
        min_rows=min_rows,
    )
    ks = table.results["ks"]
    p_values = ks.p_values if ks.p_values is not None else np.array([math.nan])
    return ScoreShift(table.value("psi", "score"), table.value("ks", "score"), float(p_values[0]))
