"""The typer app and the console every command prints through."""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import typer
import typer.rich_utils
from rich.console import Console, ConsoleDimensions

app = typer.Typer(
    name="complaw",
    help="Measure, fit and predict compression laws of large language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _Console(Console):
    """A console that, while its output is not a terminal (a pipe, a file, a test's capture),
    has room for lines as long as their content: rich would squeeze tables to 80 columns, wrap
    cells into one-word lines and cut numbers ("4.…")."""

    def _size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        return size if self.is_terminal else ConsoleDimensions(10_000, size.height)

    size = property(_size, Console.size.fset)


console = _Console()
err_console = _Console(stderr=True)
if not console.is_terminal and not os.environ.get("TERMINAL_WIDTH"):
    typer.rich_utils.MAX_WIDTH = 160  # --help piped: rich would cut option help at 80 columns


@app.callback()
def _root() -> None:
    """Measure, fit and predict compression laws of large language models.

    Stages: compress (prune or slice a model), recover (LoRA recovery fine-tuning), evaluate
    (test loss or zero-shot accuracy), speed; run / status (a whole study from a spec); fit /
    predict / critical / plan / laws (compression laws); report. Run `complaw COMMAND --help`.
    """


def field_option(cls: type, name: str) -> Any:
    """A typer option whose default and help are those of field `name` of the config dataclass
    `cls` (its `help` metadata), so that the CLI and the library never drift apart; a tuple
    default is given comma-separated."""
    spec = next(f for f in fields(cls) if f.name == name)
    default = ",".join(spec.default) if isinstance(spec.default, tuple) else spec.default
    return typer.Option(default, help=spec.metadata["help"])
