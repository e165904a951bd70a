"""The root ``driftloop`` command."""

from __future__ import annotations

import typer

from driftloop import __version__

app = typer.Typer(
    name="driftloop",
    help="The production ML loop: features, training, registry, serving, monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"driftloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version.",
        metavar="",
    ),
) -> None:
    """The production ML loop: features, training, registry, serving, monitoring."""
