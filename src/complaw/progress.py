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


LIBRARIES = ("transformers", "lm_eval", "peft", "datasets", "huggingface_hub", "accelerate",
             "torch")


def quiet_libraries() -> None:
    """Silence the libraries complaw drives, for the rest of this process, so that complaw's own
    progress bars and lines are what shows: their tqdm bars, their Future-, Deprecation- and
    UserWarnings, and their log messages below ERROR (`complaw run --verbose` keeps them)."""
    import logging
    import os
    import warnings

    from tqdm import std

    init = std.tqdm.__init__

    def quiet_init(self: std.tqdm, *args: object, **kwargs: object) -> None:
        # every bar, even those asked for with disable=False (lm-eval's), which TQDM_DISABLE keeps
        init(self, *args, **{**kwargs, "disable": True})

    std.tqdm.__init__ = quiet_init
    # read when these libraries configure their loggers (on import), which resets their level
    for env in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY"):
        os.environ[env] = "error"
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    from_libraries = rf"({'|'.join(LIBRARIES)})(\.|$)"
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=from_libraries)
