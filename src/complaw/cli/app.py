"""The typer app and the console every command prints through."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="complaw",
    help="Measure, fit and predict compression laws of large language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Measure, fit and predict compression laws of large language models.

    Stages: evaluate (test loss of a model), compress (prune or slice a model), fit / predict /
    critical / plan / laws (compression laws). Run `complaw COMMAND --help` for each.
    """


def quiet_transformers() -> None:
    """Hide transformers' own per-tensor progress bars; complaw shows its own."""
    from transformers.utils import logging

    logging.disable_progress_bar()
