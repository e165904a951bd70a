"""``driftloop init`` and ``driftloop config``: a project folder and its settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from driftloop.cli._app import app
from driftloop.cli._console import console, err_console, exit_on_error
from driftloop.core.config import CONFIG_FILENAME, load_settings
from driftloop.data import FRAUD_MODEL_TOML
from driftloop.features import example_features_py

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

# One section per model; the name is the registry name (docs/your-data.md).
# [models.loans]
# data = "data/loans.csv"          # Parquet/CSV file, folder or glob, or "duckdb:SELECT ..."
# label = "repaid"
# timestamp = "application_time"   # event time: time splits, monitoring windows
# id = "loan_id"                   # echoed in predictions and kept in the audit log
# exclude = ["notes"]              # or include = [...]
# task = "auto"                    # binary | multiclass | regression | auto
"""

GITIGNORE_TEMPLATE = """\
# State of driftloop's embedded backends (databases, artifacts, audit log).
.driftloop/
# Data files: keep them out of git (the project reads them from here).
data/
"""

EXAMPLES = ("fraud",)


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Folder to make the project in."),
    name: str | None = typer.Option(None, help="Project name (default: the folder's name)."),
    example: str | None = typer.Option(
        None, help="Start from an example project: fraud (card transactions, features.py)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files.", metavar=""),
) -> None:
    """Create a project folder: driftloop.toml and a .gitignore (with --example fraud, the
    fraud model's section and its features.py too)."""
    if example is not None and example not in EXAMPLES:
        err_console.print(
            f"[bold red]error[/]: --example {example!r} is not an example. Known: "
            f"{', '.join(EXAMPLES)}."
        )
        raise typer.Exit(code=2)
    directory.mkdir(parents=True, exist_ok=True)
    project = name or directory.resolve().name
    config = CONFIG_TEMPLATE.format(name=project)
    files = {CONFIG_FILENAME: config, ".gitignore": GITIGNORE_TEMPLATE}
    if example == "fraud":
        files[CONFIG_FILENAME] = config + "\n" + FRAUD_MODEL_TOML
        files["features.py"] = example_features_py()
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
    if example == "fraud":
        console.print(
            "Next: driftloop simulate --out data; driftloop features apply; "
            "driftloop train fraud --promote (see the README's tour)."
        )
    else:
        console.print("Next: describe your model in driftloop.toml (see docs/your-data.md).")


@app.command("config")
def show_config(
    config_file: Path | None = typer.Option(None, "--config", help="Settings file to read."),
) -> None:
    """Print the resolved settings (file, environment and defaults combined) as JSON."""
    with exit_on_error():
        settings = load_settings(config_file, environ=os.environ)
    console.print_json(json.dumps({"root": str(settings.root), **settings.model_dump()}))
