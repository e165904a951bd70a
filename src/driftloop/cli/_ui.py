"""``driftloop ui``: the dashboard alone (``driftloop serve`` also mounts it at ``/ui``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from driftloop.cli._app import app
from driftloop.cli._console import console, exit_on_error
from driftloop.core.config import load_settings
from driftloop.serving import token_digest
from driftloop.ui import standalone_ui

__all__ = ["ui"]


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8050, help="Port."),
    config: Path | None = typer.Option(None, "--config", help="Settings file."),
) -> None:
    """Serve the dashboard of this project at http://HOST:PORT/ui/ (admin actions need
    the admin token: DRIFTLOOP_ADMIN_TOKEN or serving.admin_token_sha256; with
    serving.auth = "keys", a login with an API key, each key seeing its tenant's models)."""
    import uvicorn

    with exit_on_error():
        env = dict(os.environ)
        if config is not None:
            env["DRIFTLOOP_CONFIG"] = str(config.resolve())
        settings = load_settings(environ=env)
        token = env.get("DRIFTLOOP_ADMIN_TOKEN")
        dashboard = standalone_ui(settings, admin_digest=token_digest(token) if token else None)
        console.print(f"dashboard on http://{host}:{port}/ui/")
        uvicorn.run(dashboard, host=host, port=port, log_level="warning", access_log=False)
