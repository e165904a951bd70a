"""``driftloop demo``: the whole loop on embedded defaults, in one command.

It grows with the loop; today it simulates a month of card transactions with a planted
concept drift and prints what it made.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.cli._data import print_summary, run_simulation
from driftloop.core.config import load_settings
from driftloop.data import Scenario


@app.command()
def demo(
    out: Path | None = typer.Option(
        None, help="Folder for the demo's data (default: .driftloop/demo in the project)."
    ),
    seed: int = typer.Option(7, help="Random seed."),
) -> None:
    """Run the driftloop demo on embedded defaults (no services needed)."""
    with exit_on_error():
        settings = load_settings(environ=os.environ)
        folder = out or settings.state_dir() / "demo"
        console.rule("[bold]1. Data[/]: simulated card transactions, concept drift from day 21")
        scenario = Scenario(
            customers=2_000, terminals=4_000, days=30, seed=seed, drift_at=21, drift=("concept",)
        )
        sim, seconds = run_simulation(scenario)
        sim.write(folder / "data")
    print_summary(sim, seconds)
    console.print(f"Data in {folder / 'data'}")
