"""`complaw report STUDY`: the tables and figures of a study, as a folder a person opens."""

from __future__ import annotations

from pathlib import Path

import typer

from complaw.cli.app import app, console, err_console


@app.command("report")
def report_command(
    study: Path = typer.Argument(..., help="study folder (the --out of complaw run) or records"),
    out: Path = typer.Option(None, "--out", help="report folder (default: STUDY/report)"),
) -> None:
    """Write index.html and index.md with the paper's tables and figures for a study."""
    from complaw.report import build_report

    report = build_report(study, out)
    for name, why in report.skipped.items():
        console.print(f"[dim]{name}: not shown: {why}[/]", highlight=False, soft_wrap=True)
    for name, why in report.errors.items():
        err_console.print(f"[red]{name} failed:[/] {why}", highlight=False, soft_wrap=True)
    console.print(
        f"{len(report.tables)} tables, {len(report.figures)} figures", highlight=False
    )
    typer.echo(str(report.index))
