"""`complaw run`: run a study spec into a study folder; `complaw status`: where a study stands."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from typer import Argument, Option

from complaw.cli.app import app, console, err_console
from complaw.cli.design import (
    BatchOption,
    BudgetOption,
    ByOption,
    FormOption,
    MetricOption,
    design_spec,
)
from complaw.progress import quiet_libraries


def print_refused(refused: Counter) -> None:
    """One line per reason the grid refused compressions for (`Grid.refused`)."""
    for (model, why), n in sorted(refused.items()):
        err_console.print(f"[yellow]refused:[/] {n} compression(s) of {escape(model)}: "
                          f"{escape(why)}", highlight=False, soft_wrap=True)


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
    design: Annotated[
        str | None, Option(help="full (every experiment) or adaptive (only those that tell "
                                "most about the law per unit of cost, up to --budget); "
                                "default: the spec's design, else full.")
    ] = None,
    budget: BudgetOption = None,
    batch: BatchOption = None,
    ci_width: Annotated[float | None, Option(
        help="Adaptive: also stop once every coefficient's 95 % CI is narrower than this.")
    ] = None,
    form: FormOption = None,
    by: ByOption = None,
    metric: MetricOption = None,
    prior: Annotated[Path | None, Option(
        help="Adaptive: a finished study whose models' law is the prior of this study's "
             "(new) models; each new model's experiments are then chosen to shrink its law's "
             "variance, within its share of --budget.")] = None,
    verbose: Annotated[bool, Option(
        help="Show the libraries' own progress bars, warnings and logs (lm-eval, transformers, "
             "peft, ...) beside complaw's.")] = False,
) -> None:
    """Run every experiment of SPEC that the study folder OUT does not hold yet (with
    --design adaptive: the batches the design chooses), then fit the laws and write the
    report; the last line printed is the report's index.html."""
    from complaw.errors import ConfigError
    from complaw.study.grid import describe, expand
    from complaw.study.runner import run_study
    from complaw.study.spec import load_spec

    study = load_spec(spec)
    if design not in (None, "full", "adaptive"):
        raise ConfigError(f"--design {design}: give full or adaptive")
    flags = (budget, batch, ci_width, form, by, metric, prior)
    if design == "adaptive" or (design is None and study.design is not None):
        study = study.model_copy(update={"design": design_spec(
            study.design, budget, batch, form, by, metric, ci_width,
            None if prior is None else str(prior))})
    elif any(f is not None for f in flags):
        raise ConfigError("--budget, --batch, --ci-width, --form, --by, --metric and --prior "
                          "belong to an adaptive design; add --design adaptive")
    else:
        study = study.model_copy(update={"design": None})
    if dry_run:
        grid = expand(study)
        table = Table(title=f"study {study.name}: the grid", show_header=False)
        table.add_column()
        table.add_column(justify="right")
        for line, count in describe(grid):
            table.add_row(line, f"{count:,}")
        console.print(table)
        print_refused(grid.refused)
        return
    out = out or Path("runs") / study.name
    if not verbose:
        quiet_libraries()
    options = {"address": address} if executor == "ray" else {}
    if study.design is not None:
        from complaw.study.adaptive import run_adaptive

        summary = run_adaptive(study, out, executor=executor, retry_failed=retry_failed,
                               keep_checkpoints=keep_checkpoints, data_dir=data_dir, **options)
        last = summary.steps[-1]
        console.print(f"design: {len(last.chosen)} of {summary.units} experiments "
                      f"chosen, {last.spent / last.total:.1%} of the grid's cost; "
                      f"{last.stop or 'stopped'}", highlight=False, soft_wrap=True)
    else:
        summary = run_study(study, out, executor=executor, retry_failed=retry_failed,
                            keep_checkpoints=keep_checkpoints, data_dir=data_dir, **options)
    print_refused(summary.refused)
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
    """Done / failed / pending stage executions per stage of a study folder; for an adaptive
    study also the design's progress: experiments and cost used, CI widths."""
    from complaw.experiment.folder import StudyFolder
    from complaw.study.runner import saved_spec, study_status

    table = Table(title=f"study {study}")
    for column in ("stage", "done", "failed", "pending"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, s in study_status(study).items():
        table.add_row(stage, f"{s.done:,}", f"{s.failed:,}", f"{s.pending:,}")
    console.print(table)
    spec = saved_spec(StudyFolder(study))
    if spec.design is not None:
        from complaw.study.adaptive import design_status

        progress = Table(title="adaptive design", show_header=False)
        progress.add_column()
        progress.add_column(justify="right")
        for name, value in design_status(study, spec).rows():
            progress.add_row(name, value)
        console.print(progress)
