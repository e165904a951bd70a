"""``driftloop models ...``: list, inspect, promote, roll back and verify model versions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.core.config import load_settings
from driftloop.core.errors import GateFailedError, InvalidParameterError
from driftloop.registry import AliasEvent, Registry, parse_ref

__all__ = ["models_app"]

models_app = typer.Typer(help="Model registry: versions, aliases, cards.", no_args_is_help=True)
app.add_typer(models_app, name="models")


_CONFIG: dict[str, Path | None] = {"file": None}
# Every command takes --config after its name, as train, score and serve do; the group's
# (driftloop models --config FILE list) still works, and a command's wins over it.
_CONFIG_OPTION = typer.Option(None, "--config", help="Settings file.")


@models_app.callback()
def _options(config_file: Path | None = _CONFIG_OPTION) -> None:
    """Model registry: versions, aliases, cards."""
    _CONFIG["file"] = config_file


@contextmanager
def _registry(config_file: Path | None) -> Iterator[Registry]:
    settings = load_settings(config_file or _CONFIG["file"], environ=os.environ)
    registry = Registry.from_settings(settings)
    try:
        yield registry
    finally:
        registry.close()


def _ref(ref: str, *, need_version: bool) -> tuple[str, int | None]:
    name, version = parse_ref(ref)
    if need_version and version is None:
        raise InvalidParameterError(f"Give a version as NAME:VERSION (e.g. {name}:1); got {ref!r}.")
    return name, version


def _who() -> str:
    return os.environ.get("USER", "driftloop")


def _event_line(event: AliasEvent) -> str:
    target = f"v{event.version}" if event.version is not None else "(removed)"
    before = f"v{event.previous_version}" if event.previous_version is not None else "-"
    return (
        f"{event.at:%Y-%m-%d %H:%M:%S} UTC  {event.alias}: {before} -> {target}  "
        f"({event.kind}) by {event.who}: {event.why}"
    )


@models_app.command("list")
def list_models(config_file: Path | None = _CONFIG_OPTION) -> None:
    """Every model with its latest version and current aliases."""
    with exit_on_error(), _registry(config_file) as registry:
        rows = registry.list_models()
    table = Table(title="Models")
    for column in ("name", "tenant", "latest", "aliases"):
        table.add_column(column)
    for row in rows:
        aliases = ", ".join(f"{a}=v{v}" for a, v in row["aliases"].items())
        table.add_row(row["name"], row["tenant"], str(row["latest_version"]), aliases)
    console.print(table)


@models_app.command()
def show(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """A version's metadata (the latest without :VERSION), as JSON."""
    with exit_on_error(), _registry(config_file) as registry:
        name, version = _ref(ref, need_version=False)
        mv = registry.get(name, version)
        aliases = [a for a, v in registry.aliases(name).items() if v == mv.version]
    data = {
        "ref": mv.ref,
        "flavor": mv.flavor,
        "created_at": mv.created_at.isoformat(),
        "created_by": mv.created_by,
        "aliases": aliases,
        "features": mv.signature.to_list(),
        "params": mv.params,
        "metrics": mv.metrics,
        "tags": mv.tags,
        "lineage": mv.lineage,
        "gate_report": mv.gate_report,
        "artifacts": mv.artifacts,
    }
    console.print_json(json.dumps(data, default=str))


@models_app.command()
def card(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """The generated Markdown model card."""
    with exit_on_error(), _registry(config_file) as registry:
        name, version = _ref(ref, need_version=True)
        text = registry.card(name, int(version or 0))
    typer.echo(text)


@models_app.command()
def promote(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    alias: str = typer.Option("champion", help="Alias to move."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the alias history)."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Promote a version whose release gates failed (recorded).",
        metavar="",
    ),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """Point an alias at a version (recorded with who, why and when).

    A version whose release gates failed is refused unless --force is given; the alias
    history then records the failed checks beside the reason.
    """
    with exit_on_error(), _registry(config_file) as registry:
        name, version = _ref(ref, need_version=True)
        mv = registry.get(name, version)
        failed = [
            c["name"] for c in (mv.gate_report or {}).get("checks", []) if not c.get("passed")
        ]
        why = reason
        if failed and not force:
            raise GateFailedError(
                f"{mv.ref} failed its release gates ({', '.join(failed)}); promoting it needs "
                "--force and a --reason (both are kept in the alias history)."
            )
        if failed:
            why = f"forced past failed gates ({', '.join(failed)}): {reason}"
        event = registry.set_alias(name, alias, mv.version, who=_who(), why=why)
    typer.echo(_event_line(event))


@models_app.command()
def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("champion", help="Alias to move back."),
    reason: str = typer.Option("rollback", "--reason", help="Why."),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """Move an alias back to the version it pointed at before."""
    with exit_on_error(), _registry(config_file) as registry:
        event = registry.rollback(name, alias, who=_who(), why=reason)
    typer.echo(_event_line(event))


@models_app.command()
def history(
    name: str = typer.Argument(..., help="Model name."),
    alias: str | None = typer.Option(None, help="Only this alias."),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """Every alias move of a model, oldest first."""
    with exit_on_error(), _registry(config_file) as registry:
        events = registry.history(name, alias)
        if not events:
            registry.get(name, None)  # an unknown model is an error, not an empty history
    if not events:
        which = (
            f"Alias '{alias}' of model '{name}' has" if alias else f"Model '{name}' has no alias"
        )
        console.print(f"{which} never been set.")
    for event in events:
        typer.echo(_event_line(event))


@models_app.command()
def at(
    name: str = typer.Argument(..., help="Model name."),
    time: datetime = typer.Argument(..., help="When (ISO time, UTC if no offset)."),
    alias: str = typer.Option("champion", help="Alias to look up."),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """Which version an alias pointed at, at a given time."""
    with exit_on_error(), _registry(config_file) as registry:
        mv = registry.alias_at(name, alias, time)
    console.print(f"{alias} at {time.isoformat()}: [bold]{mv.ref}[/]")


@models_app.command()
def verify(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    config_file: Path | None = _CONFIG_OPTION,
) -> None:
    """Re-hash a version's artifacts against their recorded sha256 (exit 2 if tampered)."""
    with exit_on_error(), _registry(config_file) as registry:
        name, version = _ref(ref, need_version=True)
        artifacts = registry.verify(name, int(version or 0))
    for role, digest in artifacts.items():
        console.print(f"[green]ok[/] {role} sha256:{digest}")
