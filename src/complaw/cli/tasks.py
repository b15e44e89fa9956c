"""`complaw tasks`: the zero-shot tasks, and their local lm-eval YAMLs written for lm_eval."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from complaw.cli.app import app, console


@app.command()
def tasks(
    write: Path = typer.Option(None, help="Write the local task YAMLs into this folder, for "
                               "`lm_eval ... --include_path FOLDER --tasks arc_easy_local`."),
    names: str = typer.Option(None, "--tasks", help="Only these tasks (comma-separated)."),
    data_dir: Path = typer.Option(None, help="Data directory (default: $COMPLAW_DATA_DIR)."),
) -> None:
    """List the zero-shot tasks (lm-eval's, read from local files), or write their YAMLs."""
    from complaw.data import data_dir as resolve_dir
    from complaw.evaluate.tasks import TASKS, parse_tasks, write_tasks

    selected = parse_tasks(names) if names else tuple(TASKS)
    if write is not None:
        written = write_tasks(write, selected, data_dir)
        console.print(f"wrote {', '.join(written)} into {write}")
        return
    root = resolve_dir(data_dir)
    table = Table(title=f"zero-shot tasks (data dir: {root or 'none'})")
    for column in ("task", "lm-eval name", "metric in L", "documents", "local files"):
        table.add_column(column)
    for name in selected:
        task = TASKS.get(name)
        missing = task.missing_files(root)
        table.add_row(name, task.local_name, task.metric, f"{task.docs:,}",
                      "all present" if not missing else f"missing {missing[0]}")
    console.print(table)
