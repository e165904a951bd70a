"""``driftloop demo``: the loop's whole story on embedded defaults, in one command.

1. simulate 60 days of a model's traffic with concept drift from day 35 and labels that
   arrive half a day late (``--story fraud``: card transactions and a new fraud pattern;
   ``--story regression``: delivery times, with text, boolean and missing columns);
2. train the first champion on the first weeks (the training pipeline and its release
   gates), register and promote it;
3. serve the rest through the real HTTP server on 127.0.0.1 in compressed time, with the
   labels sent to ``/v1/feedback`` as they arrive;
4. monitoring and the loop controller run on a clock that follows simulated time: the
   drift is detected, the loop retrains, gates, shadows, canaries and promotes;
5. a broken release offered later is rolled back by the loop, every request answered;
6. an HTML report, and the decision log as a table.

Everything lives in one folder (``.driftloop/demo`` by default), rebuilt on each run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error, progress_bar
from driftloop.cli._demo_recsys import run_recsys_demo
from driftloop.cli._demo_story import StoryPlan, StoryResult, fresh_folder, run_story
from driftloop.core.config import load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.data import StoryData, delivery_story, fraud_story

__all__ = ["demo", "matches", "print_outcome"]

STORIES: dict[str, Callable[[int], StoryData]] = {
    "fraud": lambda seed: fraud_story(seed=seed),
    "regression": lambda seed: delivery_story(seed=seed),
}
PLAN = StoryPlan()
RULE_WIDTH = 90  # the decision log's rules in full: driftloop loop history MODEL


@app.command()
def demo(
    out: Path | None = typer.Option(
        None, help="Folder for the demo project (default: .driftloop/demo here)."
    ),
    story: str = typer.Option(
        "fraud",
        help="fraud (a binary model), regression (delivery times) or recsys "
        "(recommendations with cold start; needs the recsys extra).",
    ),
    seed: int = typer.Option(7, help="Random seed."),
) -> None:
    """Tell the loop's whole story on embedded defaults (no services needed): drift,
    retraining, gated rollout, a broken release rolled back, a report."""
    with exit_on_error():
        if story not in (*STORIES, "recsys"):
            raise InvalidParameterError(
                f"--story {story!r} is not a story; choose {', '.join(STORIES)}, recsys."
            )
        folder = out or load_settings(environ={}).state_dir() / "demo"
        fresh_folder(folder)  # refuses a folder the demo did not make, before any work
        if story == "recsys":
            run_recsys_demo(folder, seed)
            return
        started = time.perf_counter()
        console.rule(f"[bold]1. Data[/]: the {story} story")
        data = STORIES[story](seed)
        console.print(
            f"{len(data.rows):,} rows of {data.model} over {data.days} days; from day "
            f"{data.drift_day}: {data.drift}. Labels arrive half a day late."
        )
        console.rule("[bold]2-5. Train, serve, monitor, loop[/] (simulated time)")
        with progress_bar() as bar:
            task = bar.add_task("serving the days", total=None)
            result = run_story(
                data,
                folder,
                PLAN,
                narrate=lambda line: console.print(line, highlight=False),
                on_slice=lambda done, total: bar.update(task, completed=done, total=total),
            )
        console.rule("[bold]6. Report[/]")
        print_outcome(result, time.perf_counter() - started)


def print_outcome(result: StoryResult, seconds: float) -> None:
    """The decision log as a table, the answers counted, where the report is."""
    from driftloop.cli._demo_report import write_story_report

    story = result.story
    table = Table("day", "action", "state", "from", "to", "rule", title="Decision log")
    start = story.start.tz_localize("UTC")
    for d in result.decisions:
        day = (d.at - start.to_pydatetime()).total_seconds() / 86_400
        table.add_row(
            f"{day:.2f}",
            d.action,
            d.state if d.step is None else f"{d.state} {d.step}",
            "" if d.from_version is None else f"v{d.from_version}",
            "" if d.to_version is None else f"v{d.to_version}",
            d.rule if len(d.rule) <= RULE_WIDTH else d.rule[: RULE_WIDTH - 1] + "…",
        )
    console.print(table)
    answers = result.answers
    console.print(
        f"Requests answered: {answers.total:,}, failed (non-2xx): {answers.failed}. "
        f"The loop's alias moves match its decisions: {matches(result)}."
    )
    path = write_story_report(result, result.folder / "report.html")
    console.print(f"HTML report: {path}")
    console.print(f"The demo project is in {result.folder} ({seconds:.0f} s).")


def matches(result: StoryResult) -> bool:
    """Whether the registry's alias history (the loop's moves) is what the decision log
    says: shadow/first canary -> challenger, promote -> champion and no challenger,
    rollback -> no challenger, reject -> no challenger when it pointed at the version."""
    expected: list[tuple[str, int | None]] = []
    challenger: int | None = None
    for d in result.decisions:
        if d.action in ("shadow", "canary") and challenger != d.to_version:
            challenger = d.to_version
            expected.append(("challenger", challenger))
        elif d.action == "promote":
            expected += [("champion", d.to_version), ("challenger", None)]
            challenger = None
        elif d.action == "rollback":
            expected.append(("challenger", None))
            challenger = None
        elif d.action == "reject" and any(
            e.who != "loop" and e.alias == "challenger" and e.version == d.to_version
            for e in result.alias_history
        ):
            expected.append(("challenger", None))
    return expected == result.loop_moves()
