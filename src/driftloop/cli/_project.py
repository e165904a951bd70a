"""``driftloop init`` and ``driftloop config``: a project folder and its settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from driftloop.cli._app import app
from driftloop.cli._console import console, err_console, exit_on_error
from driftloop.core.config import CONFIG_FILENAME, load_settings

CONFIG_TEMPLATE = """\
# driftloop settings. Every key is optional; the values shown are the defaults.
# Environment variables override this file: DRIFTLOOP_<SECTION>__<KEY>, e.g.
# DRIFTLOOP_SERVING__PORT=9000. Relative paths are relative to this folder.

[project]
name = "{name}"

[features]
offline_store = "duckdb:///.driftloop/offline.duckdb"
online_store = "sqlite:///.driftloop/online.db"    # or "redis://127.0.0.1:6379/0"
stream = "memory://"                               # or "redis://127.0.0.1:6379/0"

[registry]
url = "sqlite:///.driftloop/registry.db"           # or "postgresql+psycopg://host/db"
artifact_root = ".driftloop/artifacts"             # or "s3://bucket/prefix"

[audit]
url = "sqlite:///.driftloop/audit.db"              # or "postgresql+psycopg://host/db"

[serving]
host = "127.0.0.1"
port = 8000
workers = 1

[serving.batching]
max_batch_size = 256     # rows per model call
max_wait_ms = 2.0        # longest a request waits for others to join its batch

[serving.cache]
enabled = true
max_entries = 100000
ttl_s = 60.0

[serving.decision]
approve_below = 0.2
decline_above = 0.8
"""

FEATURES_TEMPLATE = '''\
"""Feature definitions of this project: entities, feature views, on-demand features.

`driftloop features apply` reads this file, checks it and records a versioned copy of
the definitions. Keep it in git beside driftloop.toml.

The example reads the simulator's data: run `driftloop simulate --out data` first.
Paths are relative to this folder; `{root}` in a query is this folder too.
"""

from driftloop.features import (
    Aggregation,
    Entity,
    OnDemandFeature,
    ParquetSource,
    QuerySource,
    StreamFeatureView,
)

customer = Entity("customer", join_keys=["customer_id"], description="A card holder.")
terminal = Entity("terminal", join_keys=["terminal_id"], description="A payment terminal.")

transactions = ParquetSource("data/transactions.parquet")

# Sliding windows per card: "transactions of this card in the last hour", ...
customer_tx = StreamFeatureView(
    "customer_tx",
    entities=[customer],
    source=transactions,
    timestamp_field="tx_datetime",
    aggregations=[
        Aggregation(None, "count", "1h", "customer_count_1h"),
        Aggregation(None, "count", "24h", "customer_count_24h"),
        Aggregation(None, "count", "7d", "customer_count_7d"),
        Aggregation("amount", "mean", "24h", "customer_amount_mean_24h"),
        Aggregation("amount", "mean", "7d", "customer_amount_mean_7d"),
        Aggregation("amount", "max", "24h", "customer_amount_max_24h"),
        Aggregation("terminal_id", "count_distinct", "24h", "customer_terminals_24h"),
    ],
    description="Spending of each card over sliding windows.",
    owner="fraud-team",
)

terminal_tx = StreamFeatureView(
    "terminal_tx",
    entities=[terminal],
    source=transactions,
    timestamp_field="tx_datetime",
    aggregations=[
        Aggregation(None, "count", "24h", "terminal_count_24h"),
        Aggregation(None, "count", "7d", "terminal_count_7d"),
    ],
    description="Traffic of each terminal.",
    owner="fraud-team",
)

# Fraud labels arrive late (label_known_at): a label counts only once it is known.
terminal_fraud = StreamFeatureView(
    "terminal_fraud",
    entities=[terminal],
    source=QuerySource(
        "SELECT t.terminal_id, t.tx_datetime, l.label_known_at, l.is_fraud "
        "FROM read_parquet('{root}/data/transactions.parquet') t "
        "JOIN read_parquet('{root}/data/labels.parquet') l USING (tx_id)"
    ),
    timestamp_field="tx_datetime",
    created_timestamp_field="label_known_at",
    aggregations=[
        Aggregation("is_fraud", "sum", "30d", "terminal_frauds_30d"),
        Aggregation(None, "count", "30d", "terminal_labelled_30d"),
    ],
    description="Known frauds at each terminal over 30 days.",
    owner="fraud-team",
)

# Computed per request, vectorised over a batch: `amount` comes with the request.
amount_over_customer_mean_7d = OnDemandFeature(
    "amount_over_customer_mean_7d",
    inputs=["amount", "customer_amount_mean_7d"],
    function=lambda df: df["amount"] / df["customer_amount_mean_7d"],
)

terminal_fraud_rate_30d = OnDemandFeature(
    "terminal_fraud_rate_30d",
    inputs=["terminal_frauds_30d", "terminal_labelled_30d"],
    function=lambda df: df["terminal_frauds_30d"] / df["terminal_labelled_30d"],
)
'''

GITIGNORE_TEMPLATE = """\
# State of driftloop's embedded backends (databases, artifacts, audit log).
.driftloop/
"""


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Folder to make the project in."),
    name: str | None = typer.Option(None, help="Project name (default: the folder's name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Create a project folder: driftloop.toml, features.py and a .gitignore."""
    directory.mkdir(parents=True, exist_ok=True)
    project = name or directory.resolve().name
    files = {
        CONFIG_FILENAME: CONFIG_TEMPLATE.format(name=project),
        "features.py": FEATURES_TEMPLATE,
        ".gitignore": GITIGNORE_TEMPLATE,
    }
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        err_console.print(
            f"[bold red]error[/]: {directory} already has {', '.join(existing)}; "
            "pass --force to overwrite."
        )
        raise typer.Exit(code=2)
    for filename, text in files.items():
        (directory / filename).write_text(text, encoding="utf-8")
    (directory / ".driftloop").mkdir(exist_ok=True)
    console.print(f"Created project [bold]{project}[/] in {directory}: {', '.join(files)}.")


@app.command("config")
def show_config(
    config_file: Path | None = typer.Option(None, "--config", help="Settings file to read."),
) -> None:
    """Print the resolved settings (file, environment and defaults combined) as JSON."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
    console.print_json(json.dumps({"root": str(settings.root), **settings.model_dump()}))
