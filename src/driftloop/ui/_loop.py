"""The loop page of a model: where its rollout is, and the controller's decision log as a
timeline with the numbers and the rule behind each decision."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from driftloop.loop import STATES, history, rollout_state
from driftloop.ui._access import check_model
from driftloop.ui._pages import flat_numbers
from driftloop.ui._project import ProjectReader
from driftloop.ui._render import render
from driftloop.ui._svg import Event, events

__all__ = ["loop"]


def loop(request: Request) -> Response:
    reader: ProjectReader = request.app.state.reader
    name = request.path_params["name"]
    check_model(request, reader, name)
    registry = reader.registry
    registry.latest_version(name)  # an unknown model is named as such
    decisions = history(registry.engine, name, limit=500)
    chart = events(
        f"Decisions of the loop controller for {name}",
        [Event(d.at, d.state, d.action, f"{d.action} ({d.rule}) by {d.who}") for d in decisions],
        lanes=STATES,
        now=datetime.now(UTC),
    )
    context = {
        "name": name,
        "state": rollout_state(registry.engine, name),
        "decisions": list(reversed(decisions)),
        "chart": chart,
        "flat": flat_numbers,
    }
    return render(request, "loop.html", context)
