"""``driftloop loop``: run the loop controller, show where each rollout is, its decision
log, and ask for a retraining."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.core.config import load_settings
from driftloop.core.errors import InvalidParameterError
from driftloop.loop import Decision, Lease, LoopController, history, request_retrain, rollout_state
from driftloop.registry import Registry

__all__ = ["loop"]

loop = typer.Typer(help="The loop controller: retrain, gate, canary, promote or roll back.")
app.add_typer(loop, name="loop", no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", help="Settings file.")


def _print_decisions(decisions: list[Decision], title: str) -> None:
    table = Table(title=title)
    for column in ("at", "action", "state", "step", "from", "to", "rule", "who"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        table.add_row(
            d.at.isoformat(timespec="seconds"),
            d.action,
            d.state,
            "" if d.step is None else str(d.step),
            "" if d.from_version is None else str(d.from_version),
            "" if d.to_version is None else str(d.to_version),
            escape(d.rule),
            escape(d.who),
        )
    console.print(table)


@loop.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="One pass, then exit.", metavar=""),
    interval: float = typer.Option(30.0, help="Seconds between passes when not --once."),
    holder: str | None = typer.Option(None, help="This controller's name (default host:pid)."),
    lease_ttl: float = typer.Option(
        60.0, "--lease-ttl", help="Seconds a model's lease lasts unless renewed."
    ),
    config_file: Path | None = _CONFIG,
) -> None:
    """Lead the rollouts of the models with a loop policy (one leader per model)."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        if not settings.loop:
            raise InvalidParameterError(
                "No model has a loop policy: add a [loop.<model>] section to driftloop.toml "
                "(see docs/loop.md)."
            )
        if interval <= 0 or lease_ttl <= 0:
            raise InvalidParameterError(
                f"--interval and --lease-ttl must be positive; got {interval} and {lease_ttl}."
            )
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
        controller = LoopController.from_settings(
            settings, holder=holder, lease_ttl=timedelta(seconds=lease_ttl)
        )
        try:
            if once:
                decisions = controller.run_once()
                _print_decisions(decisions, "Decisions of this pass")
                return
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            console.print(f"Loop controller [bold]{controller.lease.holder}[/] running.")
            with contextlib.suppress(KeyboardInterrupt):
                controller.run(interval, stop=stop)
        finally:
            controller.close()


@loop.command("status")
def status(
    model: str | None = typer.Argument(None, help="One model (default: every loop policy)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON.", metavar=""),
    config_file: Path | None = _CONFIG,
) -> None:
    """Where each model's rollout is, since when, and which controller leads it."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        models = [model] if model else sorted(settings.loop)
        registry = Registry.from_settings(settings)
        lease = Lease(registry, "status", Lease.DEFAULT_TTL)
        try:
            rows: list[dict[str, Any]] = []
            for name in models:
                s = rollout_state(registry.engine, name)
                rows.append(
                    {
                        "model": name,
                        "state": s.state,
                        "step": s.step,
                        "champion": s.champion,
                        "challenger": s.challenger,
                        "since": s.since.isoformat() if s.since else None,
                        "failed_checks": s.failed,
                        "requested": s.requested,
                        "leader": lease.current(name),
                    }
                )
        finally:
            registry.close()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="Loop status")
    for column in rows[0] if rows else ("model", "state"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row.values()))
    console.print(table)


@loop.command("history")
def show_history(
    model: str = typer.Argument(..., help="Model name."),
    limit: int = typer.Option(50, help="The last N decisions."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON.", metavar=""),
    config_file: Path | None = _CONFIG,
) -> None:
    """The model's decision log: time, action, state, versions, the rule and numbers."""
    with exit_on_error():
        if limit < 1:
            raise InvalidParameterError(f"--limit must be at least 1; got {limit}.")
        settings = load_settings(config_file, environ=os.environ)
        registry = Registry.from_settings(settings)
        try:
            decisions = history(registry.engine, model, limit)
        finally:
            registry.close()
    if as_json:
        console.print_json(json.dumps([d.to_dict() for d in decisions]))
        return
    _print_decisions(decisions, f"Decisions of {model}")


@loop.command("retrain")
def retrain(
    model: str = typer.Argument(..., help="Model name."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the decision log)."),
    by: str | None = typer.Option(None, "--by", help="Who asks (default $USER)."),
    config_file: Path | None = _CONFIG,
) -> None:
    """Ask the loop controller to retrain MODEL at its next pass (cool-down ignored)."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
        policy = settings.loop.get(model)
        if policy is None:
            raise InvalidParameterError(
                f"Model '{model}' has no loop policy: add [loop.{model}] to driftloop.toml."
            )
        if not policy.triggers.manual:
            raise InvalidParameterError(
                f"loop.{model}.triggers.manual is false: manual retraining is refused."
            )
        registry = Registry.from_settings(settings)
        try:
            who = by or os.environ.get("USER", "driftloop")
            decision = request_retrain(registry, model, reason, who=who)
        finally:
            registry.close()
    console.print(
        f"Retraining of [bold]{model}[/] requested (decision {decision.id}); the loop "
        "controller acts on it at its next pass."
    )
