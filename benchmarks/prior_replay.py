"""Replay a new model's law from a prior on a completed study's records (no model runs).

For each model of the study: the other models are the prior (`complaw.laws.prior.prior_fit`),
the model is new. The prior-driven design (`prior_design`) picks its experiments one at a time
until the next would pass ``--budget`` of that model's grid cost for the metric (its baseline
and every compression, recovery and intrinsic evaluation its law rows need, in the seconds of
the study's log; `complaw.study.cost`). Its law is judged on the model's rows it did not pick,
against the law of the same form fitted on the model's whole grid (on those same rows, so the
comparison favours the full-grid law) and against the prior's population law (no rows).

    python benchmarks/prior_replay.py results/cpu-grid --form onset --budget 0.1
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import load_law_table
from complaw.laws.fit import fit_group
from complaw.laws.law import Law
from complaw.laws.metrics import get_metric
from complaw.laws.prior import prior_design, prior_fit
from complaw.study.grid import expand
from complaw.study.pool import build_pool
from complaw.study.runner import saved_spec


def mape(law: Law, rows: pd.DataFrame) -> float:
    hat = law.predict(rows["L0"], rows["r"], rows["D"]).L
    return 100.0 * float(np.mean(np.abs(hat - rows["L"]) / rows["L"]))


def study_costs(study: str | Path, metric: str) -> tuple[dict[str, str], dict[str, set[str]],
                                                         dict[str, float]]:
    """The unit of each record id, the stage executions each unit's ``metric`` rows need
    (the evaluation of that metric and its ancestors) and each execution's seconds."""
    folder = StudyFolder(study).require()
    grid = expand(saved_spec(folder))
    pool = build_pool(grid, folder)
    stage = get_metric(metric).stage
    unit_of, nodes = {}, {}
    for unit, ids in pool.records.items():
        for i in ids:
            unit_of[i] = unit
            if grid.nodes[i].stage == stage:
                nodes.setdefault(unit, set()).update({i, *grid.ancestors(i)})
    return unit_of, nodes, pool.pool.costs(pool.pool.units)


def replay_model(table: pd.DataFrame, model: str, unit_of: dict[str, str],
                 nodes: dict[str, set[str]], seconds: dict[str, float], *, metric: str = "loss",
                 form: str | None = None, share: Sequence[str] | bool = True,
                 budget: float = 0.1) -> dict:
    """One model's replay (module docstring): its row of the table."""
    table = table[table["metric"] == metric]
    own = table[table["model"] == model].assign(unit=lambda d: d["experiment"].map(unit_of))
    base = nodes[f"base:{model}"]

    def paid(units: Sequence[str]) -> float:
        return sum(seconds[n] for n in set(base).union(*(nodes[u] for u in units)))

    def cost(units: Sequence[str], chosen: Sequence[str]) -> float:
        return paid([*chosen, *units]) - (paid(chosen) if chosen else 0.0)

    grid_cost = paid(own["unit"].unique().tolist())
    fitted = prior_fit(table[table["model"] != model], metric, form, share)

    def observe(units: Sequence[str]) -> pd.DataFrame:
        return own[own["unit"].isin(set(units))]

    steps = list(prior_design(fitted, own, observe, cost, budget * grid_cost, label=model))
    last = steps[-1]
    held = own[~own["unit"].isin(set(last.chosen))]
    full = fit_group(own, form or fitted.form).law()
    picked = own.drop_duplicates("unit").set_index("unit").loc[last.chosen]
    prior_err, full_err = mape(last.law, held), mape(full, held)
    return {"model": model, "experiments": len(last.chosen), "rows": len(own) - len(held),
            "cost_pct": 100.0 * last.spent / grid_cost, "grid_s": grid_cost,
            "picked": " ".join(f"({r:g},{D:g})" for r, D in zip(picked["r"], picked["D"],
                                                                 strict=True)),
            "prior_mape_pct": prior_err, "full_mape_pct": full_err,
            "ratio": prior_err / full_err, "population_mape_pct": mape(fitted.law(None), held),
            "held_rows": len(held), "stop": last.stop}


def replay(study: str | Path, *, metric: str = "loss", form: str | None = None,
           share: Sequence[str] | bool = True, budget: float = 0.1) -> pd.DataFrame:
    """`replay_model` for every model of ``study``."""
    table = load_law_table(study)
    unit_of, nodes, seconds = study_costs(study, metric)
    models = sorted(table.loc[table["metric"] == metric, "model"].unique())
    return pd.DataFrame([replay_model(table, m, unit_of, nodes, seconds, metric=metric,
                                      form=form, share=share, budget=budget)
                         for m in models])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a completed study folder (records and log.jsonl)")
    parser.add_argument("--metric", default="loss")
    parser.add_argument("--form", default=None, help="default: the metric's default form")
    parser.add_argument("--share", default=None,
                        help="shared coefficients, comma-separated (default: the form's)")
    parser.add_argument("--budget", type=float, default=0.1,
                        help="share of each model's grid cost its experiments may use")
    args = parser.parse_args()
    share = True if args.share is None else [c for c in args.share.split(",") if c]
    out = replay(args.study, metric=args.metric, form=args.form, share=share,
                 budget=args.budget)
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        print(out.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
