"""When a model at rest is retrained: the triggers of its ``[loop.<model>]`` policy,
read from monitoring's stored windows (see :class:`~driftloop.core.config.Triggers`).

Only the champion's windows that ended after the last retraining began count, so the
windows that started one retraining never start another; the cool-down holds back
every trigger but the manual one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftloop.core.config import LoopPolicy
from driftloop.loop._decisions import RolloutState

__all__ = ["Trigger", "due_trigger"]


@dataclass(frozen=True)
class Trigger:
    """Why to retrain now: the ``rule`` in words, its ``kind`` and the numbers."""

    kind: str
    rule: str
    numbers: Mapping[str, Any] = field(default_factory=dict)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _summary(window: Mapping[str, Any]) -> dict[str, Any]:
    summary = window.get("summary") or {}
    parsed: dict[str, Any] = json.loads(summary) if isinstance(summary, str) else dict(summary)
    return parsed


def _champion_windows(
    windows: Sequence[Mapping[str, Any]], champion: int | None, after: datetime | None
) -> list[tuple[datetime, dict[str, Any]]]:
    out = []
    for w in windows:
        if champion is not None and int(w["version"]) != champion:
            continue
        if str(w.get("route", "")) == "shadow":
            continue
        end = _utc(w["window_end"])
        if after is None or end > after:
            out.append((end, _summary(w)))
    out.sort(key=lambda pair: pair[0])
    return out


def due_trigger(
    policy: LoopPolicy,
    state: RolloutState,
    *,
    windows: Sequence[Mapping[str, Any]],
    champion: int | None,
    champion_since: datetime | None,
    now: datetime,
) -> Trigger | None:
    """The trigger that fires now for a model at rest, or None. ``windows`` are the
    model's stored monitoring windows (``MonitoringStore.window_rows``), ``champion``
    its champion version and ``champion_since`` when that version was made."""
    t = policy.triggers
    if state.requested is not None and t.manual:
        return Trigger("manual", f"manual: {state.requested}", {"reason": state.requested})
    last = state.last_retrain
    if last is not None and now - last < policy.cooldown:
        return None
    seen = _champion_windows(windows, champion, last)
    if t.drift_features > 0 and len(seen) >= t.drift_windows:
        recent = seen[-t.drift_windows :]
        counts = [len(s.get("drifted_features") or ()) for _, s in recent]
        if all(c >= t.drift_features for c in counts):
            features = sorted({f for _, s in recent for f in s.get("drifted_features") or ()})
            return Trigger(
                "drift",
                f"drift: >= {t.drift_features} feature(s) over their thresholds in "
                f"{t.drift_windows} consecutive window(s)",
                {"drifted_per_window": counts, "features": features,
                 "window_end": recent[-1][0].isoformat()},
            )  # fmt: skip
    labelled = [(end, s) for end, s in seen if s.get("checks")]
    if t.performance_windows > 0 and len(labelled) >= t.performance_windows:
        recent = labelled[-t.performance_windows :]
        if all(any(c.get("dropped") for c in s["checks"]) for _, s in recent):
            checks = [c for c in recent[-1][1]["checks"] if c.get("dropped")]
            return Trigger(
                "performance",
                f"performance: a significant drop in {t.performance_windows} consecutive "
                "labelled window(s)",
                {"checks": checks, "window_end": recent[-1][0].isoformat()},
            )
    if t.estimated_performance and seen:
        estimate = seen[-1][1].get("estimated_performance") or {}
        if isinstance(estimate, Mapping) and estimate.get("dropped"):
            return Trigger(
                "estimated-performance",
                "estimated performance: the window's estimated metric dropped",
                {"estimate": dict(estimate), "window_end": seen[-1][0].isoformat()},
            )
    since = last or champion_since
    if t.schedule is not None and since is not None and now - since >= t.schedule:
        return Trigger(
            "schedule",
            f"schedule: {t.schedule} since {since.isoformat()}",
            {"since": since.isoformat()},
        )
    return None
