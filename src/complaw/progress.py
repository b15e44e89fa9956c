"""Rich progress bars for long work (one style everywhere)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def progress_bars(transient: bool = True, fields: tuple[str, ...] = ()) -> Progress:
    """A rich Progress in complaw's one style, for several bars at once (use it as a context
    manager; on stderr, off when stderr is not a terminal, so that logs stay clean). `fields`
    are format strings of extra task fields shown after the count, e.g.
    "loss {task.fields[loss]}"."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f) for f in fields),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    return Progress(*columns, console=console, transient=transient,
                    disable=not console.is_terminal)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate `items` under a progress bar (removed when done; see `progress_bars`)."""
    with progress_bars() as progress:
        yield from progress.track(items, total=total, description=description)
