"""``[loop.<model>]``: when the loop controller retrains a model and how it rolls the new
version out (docs/loop.md).

>>> policy = LoopPolicy.model_validate(
...     {"cooldown": "6h", "triggers": {"drift_features": 2, "drift_windows": 3},
...      "rollout": {"canary_steps": [5, 25, 50], "dwell": "30m"}})
>>> policy.cooldown, policy.rollout.dwell.total_seconds(), policy.rollout.canary_steps
(datetime.timedelta(seconds=21600), 1800.0, (5.0, 25.0, 50.0))
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

__all__ = ["LoopPolicy", "RolloutPlan", "Triggers", "format_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"30m"``, ``"6h"``, ``"7D"``, ``"2w"`` or seconds as a number.

    >>> parse_duration("1.5h")
    datetime.timedelta(seconds=5400)
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        unit = found.group(2).lower() if found else ""
        if found is None or unit not in _UNITS:
            raise ValueError(
                f"expected a duration such as '90s', '30m', '6h', '7D' or '2w'; got {value!r}"
            )
        seconds = float(found.group(1)) * _UNITS[unit]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative; got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling ``parse_duration`` reads back.

    >>> format_duration(timedelta(hours=36)), format_duration(timedelta(seconds=1.5))
    ('36h', '1.5s')
    """
    seconds = value.total_seconds()
    for unit, size in (("w", 604_800), ("D", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class Triggers(_Section):
    """What starts a retraining (any one of them, outside the cool-down).

    * data drift: ``drift_features`` features or more over their thresholds in each of
      ``drift_windows`` consecutive monitoring windows of the champion (0 features: off);
    * performance: ``performance_windows`` consecutive labelled windows whose realized
      metric dropped significantly (monitoring's concept-drift checks; 0: off);
    * estimated performance: a window whose estimated metric (before labels) dropped,
      when monitoring stores an estimate (``estimated_performance = true``);
    * schedule: ``schedule`` after the last retraining (or the champion's creation);
    * manual: ``driftloop loop retrain MODEL --reason ...`` (``manual = false`` refuses it).
    """

    drift_features: int = Field(default=1, ge=0)
    drift_windows: int = Field(default=2, ge=1)
    performance_windows: int = Field(default=1, ge=0)
    estimated_performance: bool = False
    schedule: Duration | None = None
    manual: bool = True

    @field_validator("schedule")
    @classmethod
    def _positive_schedule(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class RolloutPlan(_Section):
    """How a challenger that passed the gates reaches all traffic.

    Shadow first: a copy of ``shadow_sample`` of the requests is scored by the challenger
    until it scored ``shadow_requests`` rows or ``shadow_time`` passed (both 0: no
    shadow). Then each canary step sends ``canary_steps[i]`` percent of the requests to
    the challenger for at least ``dwell`` and ``min_sample`` of its rows; then promote.
    Every check is judged by the analysis; a failed check counts, and ``threshold``
    failed checks in one step roll back (1: at once). ``max_error_rate`` and
    ``max_p99_latency_ms`` are the rollback limits of the challenger's arm; a label
    metric significantly worse than the champion's by more than ``metric_margin`` (a
    share of the champion's value) rolls back too. ``min_labelled``: labelled answers
    each arm needs before a step passes (0: steps do not wait for labels).
    ``hit_label``: for a recommender, the feedback label from which a served list counts
    as hit in the arms' hit-rate test (1 for clicks labelled 1/0; 4 for star ratings
    where 4 and 5 are positive).
    """

    shadow_requests: int = Field(default=500, ge=0)
    shadow_time: Duration = timedelta(hours=1)
    shadow_sample: float = Field(default=1.0, gt=0.0, le=1.0)
    canary_steps: tuple[float, ...] = (5.0, 25.0, 50.0)
    dwell: Duration = timedelta(minutes=30)
    min_sample: int = Field(default=200, ge=1)
    threshold: int = Field(default=1, ge=1)
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    max_p99_latency_ms: float | None = Field(default=None, gt=0.0)
    min_labelled: int = Field(default=0, ge=0)
    metric_margin: float = Field(default=0.05, ge=0.0, le=1.0)
    hit_label: float = 1.0

    @field_validator("canary_steps")
    @classmethod
    def _steps(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        steps = list(value)
        if any(not 0.0 < s < 100.0 for s in steps):
            raise ValueError(f"each step must be a percent in (0, 100); got {steps}")
        if steps != sorted(set(steps)):
            raise ValueError(f"steps must strictly increase; got {steps}")
        return value


class LoopPolicy(_Section):
    """One model's loop policy (``[loop.<model>]``).

    ``cooldown``: after a retraining starts, no trigger but a manual one starts another
    for this long (one incident retrains once). ``lookback``: the retraining data is the
    model's rows of the last ``lookback`` before the trigger (recency weighting of the
    rows is not supported: the training pipeline takes no sample weights).
    ``enabled = false`` keeps the model out of the loop.
    """

    enabled: bool = True
    cooldown: Duration = timedelta(hours=6)
    lookback: Duration = timedelta(days=28)
    triggers: Triggers = Triggers()
    rollout: RolloutPlan = RolloutPlan()

    @field_validator("lookback")
    @classmethod
    def _positive_lookback(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value
