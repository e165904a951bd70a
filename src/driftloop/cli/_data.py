"""``driftloop simulate``: make a reproducible world of card transactions."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error, progress_bar
from driftloop.core.errors import InvalidParameterError
from driftloop.data import DRIFT_KINDS, DriftKind, Scenario, Simulation, simulate_transactions

__all__ = ["print_summary", "run_simulation"]


def run_simulation(scenario: Scenario) -> tuple[Simulation, float]:
    """Simulate with a progress bar over days; return the simulation and its seconds."""
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("simulating days", total=scenario.days)
        sim = simulate_transactions(
            scenario, progress=lambda done, total: bar.update(task, completed=done)
        )
    return sim, time.perf_counter() - started


def _parse_drift(values: list[str]) -> tuple[DriftKind, ...]:
    kinds: list[DriftKind] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if part not in DRIFT_KINDS:
                raise InvalidParameterError(
                    f"--drift '{part}' is not a drift kind. Known: {', '.join(DRIFT_KINDS)}."
                )
            kinds.append(part)
    return tuple(dict.fromkeys(kinds))


@app.command()
def simulate(
    out: Path = typer.Option(Path("data"), "--out", "-o", help="Folder to write into."),
    days: int = typer.Option(60, help="Days of transactions."),
    customers: int = typer.Option(5_000, help="Number of customers (cards)."),
    terminals: int = typer.Option(10_000, help="Number of payment terminals."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives byte-identical files."),
    drift_at: int | None = typer.Option(None, help="Day (0-based) on which drift starts."),
    drift: list[str] = typer.Option(
        [], help=f"Drift kind, repeatable or comma-separated: {', '.join(DRIFT_KINDS)}."
    ),
    label_delay_days: float = typer.Option(7.0, help="Days until a label becomes known."),
    start_date: datetime = typer.Option("2025-01-01", formats=["%Y-%m-%d"], help="Date of day 0."),
) -> None:
    """Simulate card transactions with fraud and drift into Parquet files and a JSON."""
    with exit_on_error():
        scenario = Scenario(
            customers=customers,
            terminals=terminals,
            days=days,
            seed=seed,
            drift_at=drift_at,
            drift=_parse_drift(drift),
            label_delay_days=label_delay_days,
            start_date=date(start_date.year, start_date.month, start_date.day),
        )
        sim, seconds = run_simulation(scenario)
        folder = sim.write(out)
    print_summary(sim, seconds)
    console.print(
        f"Wrote {folder}/{{transactions,customers,terminals,labels}}.parquet and scenario.json"
    )


def print_summary(sim: Simulation, seconds: float) -> None:
    """Counts, fraud rates per scenario (observed vs expected) and before/after drift."""
    s = sim.summary()
    console.print(
        f"[bold]{s['transactions']:,}[/] transactions from {s['customers']:,} customers at "
        f"{s['terminals']:,} terminals over {s['days']} days, in {seconds:.2f} s; "
        f"fraud rate [bold]{s['fraud_rate']:.2%}[/]."
    )
    table = Table("fraud scenario", "share of transactions", "expected", title="Fraud")
    expected = s["expected_fraud_rate_by_scenario"]
    for name, rate in s["fraud_rate_by_scenario"].items():
        exp = expected.get(name)
        table.add_row(name, f"{rate:.3%}", f"{exp:.3%}" if exp is not None else "-")
    console.print(table)
    scenario = sim.scenario
    if scenario.drift_at is not None:
        tx = sim.transactions
        after = tx["tx_time_days"] >= scenario.drift_at
        drift_table = Table(
            "period",
            "transactions/day",
            "mean amount",
            "fraud rate",
            title=f"Drift ({', '.join(scenario.drift)}) from day {scenario.drift_at}",
        )
        for label, part, n_days in (
            ("before", tx[~after], scenario.drift_at),
            ("after", tx[after], scenario.days - scenario.drift_at),
        ):
            drift_table.add_row(label, *_period_row(part, n_days))
        console.print(drift_table)


def _period_row(part: pd.DataFrame, n_days: int) -> tuple[str, str, str]:
    if part.empty:
        return "0", "-", "-"
    return (
        f"{len(part) / max(n_days, 1):,.0f}",
        f"{part['amount'].mean():.2f}",
        f"{part['is_fraud'].mean():.2%}",
    )
