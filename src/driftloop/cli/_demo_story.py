"""The demo's story, run in one process on embedded defaults:

1. a model's rows over simulated days, with concept drift from the drift day and labels
   that come back late (:mod:`driftloop.data`);
2. the first champion, trained by the project's training pipeline (release gates) on the
   first weeks, registered and promoted;
3. the rest of the days replayed through the real HTTP server in compressed time, slice
   by slice: each slice's rows sent to ``/v1/models/<model>/predict`` (event time: the
   row's), the labels that arrived by then sent to ``/v1/feedback``;
4. monitoring at each day's end, and the loop controller after each slice, on a clock
   that follows simulated time: it detects the drift, retrains on its lookback, gates,
   shadows, canaries and promotes;
5. later a broken release is offered to the loop, which rolls it back.

:func:`run_story` returns what happened (:class:`StoryResult`); the command prints it
and :mod:`driftloop.cli._demo_report` draws it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.cli._demo_retrainer import StoryRetrainer
from driftloop.cli._demo_server import Answers, StoryServer, serving
from driftloop.core.config import CONFIG_FILENAME, Settings, load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.data import StoryData
from driftloop.loop import Decision, LoopController, history, request_retrain
from driftloop.registry import AliasEvent, Registry
from driftloop.stats import TASKS

__all__ = ["MARKER", "StoryPlan", "StoryResult", "fresh_folder", "run_story"]

MARKER = ".driftloop-demo"
Narrate = Callable[[str], None]


@dataclass(frozen=True)
class StoryPlan:
    """How the story is told: the first champion trains on days ``[warmup_days,
    train_days)``; each later day is replayed in ``slices_per_day`` slices, in requests of
    ``rows_per_request`` rows from ``client_threads`` threads; on day ``broken_day`` a
    broken release is offered to the loop."""

    warmup_days: int = 7
    train_days: int = 28
    slices_per_day: int = 6
    rows_per_request: int = 2
    client_threads: int = 4
    broken_day: int = 50
    policy: str = ""  # the [loop.<model>] tables; default: DEFAULT_POLICY


DEFAULT_POLICY = """\
[loop.{model}]
cooldown = "2D"            # one incident retrains once
lookback = "5D"            # retrain on the last five days (with the labels known by then)

[loop.{model}.triggers]
drift_features = 2         # 2+ features over their thresholds ...
drift_windows = 2          # ... in 2 consecutive daily windows
performance_windows = 1    # or 1 labelled window with a significant drop

[loop.{model}.rollout]
shadow_requests = 200      # the challenger scores copies of 200 requests' rows first
shadow_time = "1D"
canary_steps = [10, 25, 50]
dwell = "4h"               # at least one slice of the day per step
min_sample = 150           # rows the challenger answers in a step
threshold = 1              # one failed check rolls back
max_error_rate = 0.2       # wide: a step is judged on a few hundred requests of a
                           # compressed day; a broken challenger fails all of its requests
"""

PROJECT_TOML = """\
# The demo's project: embedded defaults (SQLite registry and audit log, local files).
[gates]
max_latency_ms = 50.0      # a shared CI machine must not fail the latency gate

[monitoring]
window_size = "1D"
lookback = "4D"
min_rows = 150
alerts = ["file:{alerts}"]

[serving.cache]
enabled = false            # every request is scored by the version it is routed to

"""


@dataclass
class StoryResult:
    """What the story did: the decisions, the alias history, the answers the clients got,
    the monitoring windows, and the versions it made."""

    story: StoryData
    folder: Path
    settings: Settings
    first_champion: int
    decisions: list[Decision]
    alias_history: list[AliasEvent]
    answers: Answers
    windows: list[dict[str, Any]]
    broken_version: int | None
    audit_rows: pd.DataFrame = field(repr=False)

    def loop_moves(self) -> list[tuple[str, int | None]]:
        """The loop's alias moves, in order: (alias, version; None: removed)."""
        return [(e.alias, e.version) for e in self.alias_history if e.who == "loop"]


def fresh_folder(folder: Path) -> None:
    """An empty demo folder; refuses to wipe a folder the demo did not make."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise InvalidParameterError(
                f"--out {folder} is not empty and was not made by the demo; "
                "choose an empty or new folder."
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by driftloop demo; rebuilt on each run\n")


def write_project(story: StoryData, folder: Path, plan: StoryPlan) -> Settings:
    """The demo project's ``driftloop.toml`` (embedded defaults, the model's section and
    its loop policy) and its data folder; its settings."""
    policy = (plan.policy or DEFAULT_POLICY).format(model=story.model)
    text = (
        PROJECT_TOML.format(alerts=(folder / "alerts.jsonl").as_posix())
        + story.model_toml()
        + "\n"
        + policy
    )
    (folder / CONFIG_FILENAME).write_text(text)
    story.write_rows(folder / "data")
    return load_settings(folder / CONFIG_FILENAME, environ={})


def utc(ts: pd.Timestamp) -> datetime:
    """A naive simulated time as an aware UTC datetime."""
    return ts.tz_localize(UTC).to_pydatetime() if ts.tzinfo is None else ts.to_pydatetime()


def run_story(
    story: StoryData,
    folder: Path,
    plan: StoryPlan | None = None,
    *,
    narrate: Narrate = lambda line: None,
    on_slice: Callable[[int, int], None] = lambda done, total: None,
) -> StoryResult:
    """Tell ``story`` in ``folder`` (made afresh); ``narrate`` receives the story's lines,
    ``on_slice`` the progress (slices done, total)."""
    from driftloop.training import train_and_promote

    plan = plan or StoryPlan()
    fresh_folder(folder)
    settings = write_project(story, folder, plan)
    model = story.model
    train_start, train_end = story.day(plan.warmup_days), story.day(plan.train_days)
    story.write_labels(folder / "data", train_end)
    result, promoted = train_and_promote(
        settings, model, start=train_start, end=train_end, who="demo", check_drift=False
    )
    if result.version is None or not promoted:
        raise InvalidParameterError(
            f"The demo's first {model} model did not pass its release gates: "
            f"{result.gate_report.get('checks')}"
        )
    first = result.version.version
    metric = result.version.signature.metric or TASKS[story.task].default_metric
    narrate(
        f"day {plan.train_days:5.2f}  trained {model} v{first} on days {plan.warmup_days}-"
        f"{plan.train_days - 1}: release gates passed, held-out "
        f"{metric} {float(result.metrics.get(metric, float('nan'))):.3f}; promoted to champion."
    )
    registry = Registry.from_settings(settings)
    now = [utc(train_end)]
    retrainer = StoryRetrainer(story, settings, registry)
    controller = LoopController.from_settings(
        settings, holder="demo-loop", clock=lambda: now[0], retrainer=retrainer
    )
    quiet = _quiet_server_logs()
    try:
        with serving(settings, model, threads=plan.client_threads) as server:
            _replay(story, plan, settings, server, controller, retrainer, now, narrate, on_slice)
            answers = server.answers
        decisions = history(registry.engine, model)
        alias_history = registry.history(model)
    finally:
        controller.close()
        registry.close()
        quiet()
    return StoryResult(
        story=story,
        folder=folder,
        settings=settings,
        first_champion=first,
        decisions=decisions,
        alias_history=alias_history,
        answers=answers,
        windows=_windows(settings, model),
        broken_version=retrainer.broken_version,
        audit_rows=_audit_rows(settings, model, story),
    )


def _replay(
    story: StoryData,
    plan: StoryPlan,
    settings: Settings,
    server: StoryServer,
    controller: LoopController,
    retrainer: StoryRetrainer,
    now: list[datetime],
    narrate: Narrate,
    on_slice: Callable[[int, int], None],
) -> None:
    from driftloop.monitoring import project_monitor

    model, ids = story.model, dict[Any, str]()
    per_day = plan.slices_per_day
    total = (story.days - plan.train_days) * per_day
    label_cursor = story.day(plan.train_days)
    done = 0
    with project_monitor(settings, models=[model]) as monitor:
        for day in range(plan.train_days, story.days):
            if day == story.drift_day:
                narrate(f"day {day:5.2f}  (unseen by the loop) the world changes: {story.drift}")
            if day == plan.broken_day:
                retrainer.broken_next = True
                request_retrain(
                    controller.registry,
                    model,
                    "demo: a hand-built release (its gate report copied from the champion)",
                    who="demo",
                    at=now[0],
                )
                narrate(
                    f"day {day:5.2f}  a hand-built release (gate report copied from the "
                    "champion, scorer broken) is offered to the loop"
                )
            for part in range(per_day):
                start = story.day(day + part / per_day)
                end = story.day(day + (part + 1) / per_day)
                rows = story.between(start, end)
                answered = server.predict(story.instances(rows), plan.rows_per_request)
                ids.update(
                    (key, pid)
                    for key, pid in zip(rows[story.id].tolist(), answered, strict=True)
                    if pid is not None
                )
                arrived = story.labels_arriving(label_cursor, end)
                label_cursor = end
                labels = [
                    {"prediction_id": ids[key], "label": _label(value)}
                    for key, value in zip(arrived[story.id], arrived[story.label], strict=True)
                    if key in ids
                ]
                server.feedback(labels)
                server.shadow_settled()
                now[0] = utc(end)
                if part == per_day - 1:
                    monitor.run_once(now[0], models=[model])
                for decision in controller.run_once():
                    when = day + (part + 1) / per_day
                    narrate(f"day {when:5.2f}  " + describe(decision, retrainer.broken_version))
                state = controller.registry.traffic.get(model)
                if state is not None:
                    server.follows(state.revision)
                server.shadowing = bool(state and state.policy and state.policy.get("shadow"))
                done += 1
                on_slice(done, total)


def describe(decision: Decision, broken: int | None = None) -> str:
    """One line of the narrative for a decision, with the numbers that decided it
    (``broken``: the version of the demo's broken release, if any)."""
    n, to = decision.numbers, f"v{decision.to_version}"
    if decision.action == "trained" and decision.to_version == broken:
        return f"{to} registered: the hand-built release, not trained by the pipeline"
    if decision.action == "retrain":
        checks = [c for c in n.get("checks") or () if c.get("dropped")]
        if checks:
            c = checks[0]
            why = f"{c['metric']} went from {c['reference']:.3f} to {c['now']:.3f}"
            why += f" ({c['standard_errors']:.1f} standard errors) on a labelled window"
        elif n.get("features"):
            why = f"features drifted: {', '.join(n['features'])}"
        elif n.get("trigger") == "manual":
            return f"manual request taken: {n.get('reason', decision.rule)}"
        else:
            return decision.rule
        return f"{n.get('trigger', 'trigger')}: {why}; retraining on the lookback"
    if decision.action == "trained":
        return f"{to} trained and registered ({decision.rule})"
    if decision.action == "shadow":
        seen = n.get("recent_window") or {}
        if "challenger" in seen:
            return (
                f"{to} passed the release gates and beats the champion on the latest labelled "
                f"window ({seen['metric']} {seen['challenger']:.3f} vs {seen['champion']:.3f}): "
                "shadow"
            )
        note = seen.get("note", "no labelled window")
        return (
            f"{to}: the labelled-window check has no verdict ({note}); its gate report "
            "stands: shadow"
        )
    if decision.action == "canary":
        return f"{to} canary step {(decision.step or 0) + 1}: {decision.rule.rsplit('; ', 1)[-1]}"
    if decision.action == "promote":
        return f"{to} promoted to champion"
    if decision.action in ("rollback", "reject"):
        return f"{to} {'rolled back' if decision.action == 'rollback' else 'rejected'}: " + (
            decision.rule
        )
    return f"{decision.action}: {decision.rule}"


def _label(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number


def _windows(settings: Settings, model: str) -> list[dict[str, Any]]:
    from driftloop.monitoring import MonitoringStore

    store = MonitoringStore(settings.audit.url, root=settings.root)
    try:
        return store.window_rows(model)
    finally:
        store.dispose()


def _audit_rows(settings: Settings, model: str, story: StoryData) -> pd.DataFrame:
    """Every prediction of the story from the audit log (time, version, route, score or
    value, label)."""
    from driftloop.audit import open_audit_log

    log = open_audit_log(settings.audit.url, root=settings.root)
    try:
        frame = log.window(utc(story.day(0)), utc(story.day(story.days + 1)), model=model)
    finally:
        log.close()
    return frame


def _quiet_server_logs() -> Callable[[], None]:
    """The broken release's failures are logged by the server at each request; the story
    tells them once (its rollback). Returns the undo."""
    logger = logging.getLogger("driftloop.serving")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    return lambda: logger.setLevel(level)
