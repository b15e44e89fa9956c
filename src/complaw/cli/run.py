"""`complaw run`: run a study spec into a study folder; `complaw status`: where a study stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from typer import Argument, Option

from complaw.cli.app import app, console, err_console, quiet_transformers


@app.command("run")
def run_command(
    spec: Annotated[
        str | None,
        Argument(help="Study spec (YAML file) or a shipped spec name: quickstart (default), "
                      "paper."),
    ] = None,
    out: Annotated[
        Path | None,
        Option(help="Study folder (records, checkpoints, log, report); default: runs/<spec name>."),
    ] = None,
    dry_run: Annotated[
        bool, Option(help="Print the grid (experiments, stage executions) and stop.")
    ] = False,
    executor: Annotated[str, Option(help="local (this process) or ray.")] = "local",
    address: Annotated[
        str | None, Option(help="Ray cluster address (ray executor; default: start one here).")
    ] = None,
    retry_failed: Annotated[bool, Option(help="Run failed experiments again.")] = False,
    report: Annotated[
        bool, Option(help="Fit the laws and write the report (STUDY/report) at the end.")
    ] = True,
    keep_checkpoints: Annotated[
        bool, Option(help="Keep checkpoints that no experiment still needs.")
    ] = False,
    data_dir: Annotated[
        Path | None, Option(help="Dataset folder (default: $COMPLAW_DATA_DIR).")
    ] = None,
) -> None:
    """Run every experiment of SPEC that the study folder OUT does not hold yet, then fit the
    laws and write the report; the last line printed is the report's index.html."""
    from complaw.study.grid import describe, expand
    from complaw.study.runner import run_study
    from complaw.study.spec import load_spec

    study = load_spec(spec)
    if dry_run:
        grid = expand(study)
        table = Table(title=f"study {study.name}: the grid", show_header=False)
        table.add_column()
        table.add_column(justify="right")
        for line, count in describe(grid):
            table.add_row(line, f"{count:,}")
        console.print(table)
        return
    out = out or Path("runs") / study.name
    quiet_transformers()
    options = {"address": address} if executor == "ray" else {}
    summary = run_study(study, out, executor=executor, retry_failed=retry_failed,
                        keep_checkpoints=keep_checkpoints, data_dir=data_dir, **options)
    for problem in summary.problems:
        err_console.print(f"[yellow]recomputing:[/] {problem}", highlight=False)
    ran = ", ".join(f"{stage} {n}" for stage, n in sorted(summary.ran.items())) or "nothing"
    console.print(f"{out}: {summary.done} experiment(s) done, {summary.failed} failed; "
                  f"stage executions: {ran}; checkpoints pruned: {summary.pruned}",
                  soft_wrap=True, highlight=False)
    for ident, error in summary.failures[:10]:
        err_console.print(f"[red]failed[/] {ident}: {error}", highlight=False, soft_wrap=True)
    if summary.interrupted:
        err_console.print("stopped (Ctrl-C); run the same command again to resume")
        raise typer.Exit(130)
    if report:
        from complaw.report import build_report

        built = build_report(out)
        for name, why in built.errors.items():
            err_console.print(f"[red]report: {name} failed:[/] {why}", highlight=False,
                              soft_wrap=True)
        console.print(f"report: {len(built.tables)} tables, {len(built.figures)} figures",
                      highlight=False)
        typer.echo(str(built.index))
    if summary.failed:
        raise typer.Exit(1)


@app.command("status")
def status_command(
    study: Annotated[Path, Argument(help="Study folder written by `complaw run`.")],
) -> None:
    """Done / failed / pending stage executions per stage of a study folder."""
    from complaw.study.runner import study_status

    table = Table(title=f"study {study}")
    for column in ("stage", "done", "failed", "pending"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, s in study_status(study).items():
        table.add_row(stage, f"{s.done:,}", f"{s.failed:,}", f"{s.pending:,}")
    console.print(table)
