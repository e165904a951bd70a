"""``driftloop features ...``: apply definitions, materialize, statistics."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.core.config import Settings, load_settings
from driftloop.features import Catalog, FeatureStore, load_definitions
from driftloop.registry import Registry

__all__ = ["features_app", "open_store", "registered_features"]

features_app = typer.Typer(help="Feature definitions, materialization and statistics.")
app.add_typer(features_app, name="features")


def registered_features(settings: Settings, catalog: Catalog | None = None) -> set[str]:
    """What registered models use, from every registered version's signature:
    ``view:feature`` for each input that came from a feature view (on-demand features
    as ``name:name``), plus, by bare name, the inputs of the used on-demand features as
    ``catalog`` defines them (removing those breaks serving the model just as well).

    The features package may not import the registry, so the CLI asks it here.
    """
    registry = Registry.from_settings(settings)
    try:
        specs = [
            spec
            for model in registry.list_models()
            for version in registry.versions(str(model["name"]))
            for spec in version.signature.features
            if spec.view is not None
        ]
    finally:
        registry.close()
    used = {f"{spec.view}:{spec.name}" for spec in specs}
    if catalog is not None:
        pending = [spec.name for spec in specs if spec.name in catalog.on_demand]
        while pending:
            for name in catalog.on_demand[pending.pop()].inputs:
                if name not in used:
                    used.add(name)
                    pending += [name] if name in catalog.on_demand else []
    return used


def open_store(config_file: Path | None, file: Path | None) -> tuple[Settings, FeatureStore]:
    """Settings, and a store with the project's ``features.py`` definitions."""
    settings = load_settings(config_file, environ=os.environ)
    definitions = load_definitions(file or settings.root / "features.py")
    return settings, FeatureStore(settings, definitions=definitions)


_CONFIG = typer.Option(None, "--config", help="Settings file to read.")
_FILE = typer.Option(None, "--file", "-f", help="Definitions file (default: features.py).")


@features_app.command("apply")
def apply_definitions(
    config_file: Path | None = _CONFIG,
    file: Path | None = _FILE,
    new_version: bool = typer.Option(
        False, "--new-version", help="Accept incompatible changes as new versions.", metavar=""
    ),
) -> None:
    """Validate features.py and record its definitions (versioned) in the registry."""
    with exit_on_error():
        settings, store = open_store(config_file, file)
        registry = store.registry
        assert registry is not None
        plan = registry.apply(
            store.catalog.all(),
            in_use=lambda: registered_features(settings, store.catalog),
            new_version=new_version,
            tenant=settings.project.tenant,
        )
    for line in plan.lines():
        style = {"+": "green", "-": "red", "~": "yellow"}.get(line[0], "dim")
        console.print(f"[{style}]{line}[/]", highlight=False)
    changed = sum(c.kind != "unchanged" for c in plan.changes)
    console.print(f"Applied {len(plan.changes)} definitions ({changed} changed).")
    store.close()


@features_app.command("list")
def list_features(config_file: Path | None = _CONFIG, file: Path | None = _FILE) -> None:
    """List the features defined in features.py."""
    with exit_on_error():
        _, store = open_store(config_file, file)
    table = Table("view", "feature", "type", "version")
    for view in store.catalog.views.values():
        for f in view.features:
            table.add_row(view.name, f.name, f.dtype, view.version)
    for od in store.catalog.on_demand.values():
        table.add_row("(on demand)", od.name, od.dtype, od.version)
    console.print(table)
    store.close()


@features_app.command("materialize")
def materialize(
    config_file: Path | None = _CONFIG,
    file: Path | None = _FILE,
    start: datetime | None = typer.Option(None, help="Start (default: each view's watermark)."),
    end: datetime | None = typer.Option(None, help="End, exclusive (default: now, UTC)."),
    view: list[str] = typer.Option([], help="Only these views (repeatable)."),
) -> None:
    """Copy the latest feature values to the online store (incremental by default)."""
    with exit_on_error():
        _, store = open_store(config_file, file)
        views = view or None
        if start is not None:
            now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as the stores keep time
            results = store.materialize(start, end or now, views=views)
        else:
            results = store.materialize_incremental(end, views=views)
    table = Table("view", "from", "to", "rows written", title="Materialized")
    for r in results:
        table.add_row(r.view, str(r.start), str(r.end), f"{r.rows:,}")
    console.print(table)
    store.close()


@features_app.command("stats")
def stats(
    view: str = typer.Argument(..., help="Feature view name."),
    config_file: Path | None = _CONFIG,
    file: Path | None = _FILE,
    history: bool = typer.Option(
        False, "--history", help="Also list past materializations.", metavar=""
    ),
) -> None:
    """Row count, null rate, freshness and quantiles of a feature view."""
    with exit_on_error():
        _, store = open_store(config_file, file)
        s = store.stats(view)
    fresh = s["freshness_s"]
    console.print(
        f"[bold]{view}[/] (v {s['view_version']}): {s['row_count']:,} rows, newest "
        f"{s['newest']}, age {fresh / 3600:,.1f} h"
        if fresh is not None
        else f"{view}: empty"
    )
    table = Table("column", "type", "null rate", "p1", "p25", "p50", "p75", "p99")
    for name, c in s["columns"].items():
        q = c.get("quantiles", {})
        cells = [
            f"{q[k]:.4g}" if q.get(k) is not None else "-"
            for k in ("0.01", "0.25", "0.5", "0.75", "0.99")
        ]
        null_rate = c["null_rate"]
        table.add_row(name, c["dtype"], "-" if null_rate is None else f"{null_rate:.2%}", *cells)
    console.print(table)
    if history and store.registry is not None:
        past = Table("computed at", "rows", "freshness (h)", title="Per materialization")
        for h in store.registry.stats_history(view):
            age = h["freshness_s"]
            past.add_row(
                str(h["computed_at"]),
                f"{h['row_count']:,}",
                "-" if age is None else f"{age / 3600:.1f}",
            )
        console.print(past)
    store.close()
