"""`complaw design replay`: the adaptive design replayed on a completed study or a simulated
grid, against the full grid's law and random subsets of the same cost. The options shared
with `complaw run --design adaptive` are defined here once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from typer import Argument, Option

from complaw.cli.app import app, console

design_app = typer.Typer(help="Adaptive experiment design: replay it on finished grids.",
                         no_args_is_help=True)
app.add_typer(design_app, name="design")

BudgetOption = Annotated[str | None, Option(
    "--budget", help="Budget: a fraction of the grid's cost in (0, 1] (0.25), or seconds, "
                     "minutes, hours (900s, 30m, 2h); replay takes a comma list "
                     "(default: the spec's, else 0.25).")]
BatchOption = Annotated[int | None, Option(
    "--batch", help="Experiments chosen per step, run together (default 4).")]
FormOption = Annotated[str | None, Option(
    "--form", help="Law form the design fits (default: the metric's, eq1 for loss; with "
    "--prior its pooled one, plateau for loss).")]
ByOption = Annotated[list[str] | None, Option(
    "--by", help="Fit one law per group of these columns (comma-separated; default: model "
                 "and method where the grid has several; none: one law for everything).")]
MetricOption = Annotated[str | None, Option(
    "--metric", help="Metric whose law the design fits: loss (default) or accuracy.")]


def design_spec(base, budget: str | None = None, batch: int | None = None,
                form: str | None = None, by: list[str] | None = None,
                metric: str | None = None, ci_width: float | None = None,
                prior: str | None = None):
    """The spec's design settings (or the defaults) with the given flags on top."""
    from complaw.study.spec import DesignSpec, parse_design

    values = (base or DesignSpec()).model_dump()
    flags = {"budget": budget, "batch": batch, "form": form, "metric": metric,
             "ci_width": ci_width, "prior": prior,
             "by": [p.strip() for v in by for p in v.split(",")
                    if p.strip() and p.strip() != "none"] if by else None}
    values.update({k: v for k, v in flags.items() if v is not None})
    return parse_design(values)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} %"


@design_app.command("replay")
def replay_command(
    study: Annotated[str, Argument(help="A completed study folder, or with --simulate a spec "
                                        "(YAML file or shipped name, e.g. paper).")],
    budget: BudgetOption = None,
    seeds: Annotated[int, Option(help="Random subsets to compare with.", min=1)] = 10,
    seed: Annotated[int, Option(help="First seed (random subsets, simulated noise).")] = 0,
    batch: BatchOption = None,
    form: FormOption = None,
    by: ByOption = None,
    metric: MetricOption = None,
    simulate: Annotated[str | None, Option(
        help="Simulate the spec's grid from this published law (e.g. paper:all:intrinsic) "
             "instead of reading records.")] = None,
    noise: Annotated[float, Option(help="Simulated log-normal noise (sigma of log L).",
                                   min=0.0)] = 0.05,
    as_json: Annotated[bool, Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Replay the adaptive design with no compute: its law's MAPE on the experiments it did
    not choose, the full grid's law's MAPE on the same rows, random subsets of equal cost."""
    from complaw.errors import ConfigError
    from complaw.study.replay import replay_simulated, replay_study
    from complaw.study.runner import saved_spec
    from complaw.study.spec import load_spec

    if simulate is None:
        if not Path(study).is_dir():
            raise ConfigError(f"{study} is not a study folder; give one, or a spec with "
                              "--simulate LAW")
        from complaw.experiment.folder import StudyFolder

        base = saved_spec(StudyFolder(study)).design
    else:
        spec = load_spec(study)
        base = spec.design
    budgets = [b.strip() for b in (budget or "").split(",") if b.strip()] or [None]
    results = []
    for b in budgets:
        settings = design_spec(base, b, batch, form, by, metric)
        results.append(replay_study(study, settings, seeds, seed) if simulate is None else
                       replay_simulated(spec, simulate, settings, noise, seeds, seed))
    if as_json:
        payload = [r.to_dict() for r in results]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
        return
    table = Table(title=f"adaptive design replayed on {study}"
                        + (f" (simulated from {simulate})" if simulate else ""))
    for column in ("budget", "cost used", "experiments", "held-out rows", "adaptive MAPE",
                   "full-grid MAPE", "random median", "random p10-p90"):
        table.add_column(column, justify="left" if column == "budget" else "right")
    for r in results:
        a, rnd = r.adaptive, r.random
        table.add_row(r.budget, f"{a['cost_fraction']:.1%}", str(a["n"]),
                      str(a["rows_heldout"]), _pct(a["mape_pct"]), _pct(r.full["mape_pct"]),
                      _pct(rnd["median_mape_pct"]),
                      f"{_pct(rnd['p10'])} - {_pct(rnd['p90'])}")
    console.print(table)
    console.print(f"form {results[0].adaptive['form']}; random: {seeds} subsets of the same "
                  "cost, each with the seed design, judged on the experiments it left out",
                  highlight=False)
