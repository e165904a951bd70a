"""The CLI's consoles and the translation of driftloop errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftloop.core.errors import DriftloopError, InvalidParameterError

__all__ = ["console", "err_console", "exit_on_error", "progress_bar", "time_option"]

console = Console()
err_console = Console(stderr=True)


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Print a driftloop error as one red message (no traceback) and exit with code 2.

    The message is printed as text, not markup: ``[models.NAME]`` in a hint must reach
    the reader (Rich would take it for a style tag and drop it)."""
    try:
        yield
    except DriftloopError as exc:
        err_console.print(
            f"[bold red]error[/] [dim]({exc.code})[/]: {escape(str(exc))}", highlight=False
        )
        raise typer.Exit(code=2) from None


def progress_bar() -> Progress:
    """A progress bar on stderr; it disappears when done and stays quiet off a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def time_option(value: str | None, option: str) -> pd.Timestamp | None:
    """An ISO date or time given to ``option``, or a clear error."""
    if not value:
        return None
    try:
        return pd.Timestamp(value)
    except ValueError:
        raise InvalidParameterError(f"{option} {value!r} is not an ISO date or time.") from None
