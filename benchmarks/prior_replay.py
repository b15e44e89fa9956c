"""Replay a new model's law from a prior on a completed study's records (no model runs).

For each model of the study: the other models are the prior (`complaw.laws.prior.prior_fit`),
the model is new. The prior-driven design (`prior_design`) picks its experiments one at a time
until the next would pass ``--budget`` of that model's grid cost for the metric (its baseline
and every compression, recovery and intrinsic evaluation its law rows need, in the seconds of
the study's log; `complaw.study.cost`). Its law is judged on the model's rows it did not pick,
against the law of the same form fitted on the model's whole grid (on those same rows, so the
comparison favours the full-grid law) and against the prior's population law (no rows).
With ``--prior`` (repeatable), other studies' models join the prior; ``--trend`` lets the mean
of those per-model coefficients follow model size (N0), so the population law is the one at
the new model's size.

``--metric accuracy`` replays the two-step accuracy law instead (`accuracy_replay`): each model
in turn is new and gives only its task loss where no accuracy was measured (the cheap rows:
an evaluation of the gold answers alone); its law per task is judged on its accuracies, in
points, beside the population law and the noise floor of 100 sqrt(2/pi) mean s.e.

    python benchmarks/prior_replay.py results/cpu-grid --form onset --budget 0.1
    python benchmarks/prior_replay.py results/cpu-new-model --prior results/cpu-grid
    python benchmarks/prior_replay.py results/cpu-grid --prior results/cpu-new-model \
        --form onset --share k,c --trend h
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
from complaw.laws.holdout import CONDITION
from complaw.laws.law import Law
from complaw.laws.metrics import get_metric
from complaw.laws.prior import prior_design, prior_fit, prior_laws
from complaw.laws.table import merge
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
                 trend: Sequence[str] = (), budget: float = 0.1,
                 prior: pd.DataFrame | None = None) -> dict:
    """One model's replay (module docstring): its row of the table; ``prior``: the prior's
    rows (default: the table's; the model's own are left out)."""
    table = table[table["metric"] == metric]
    prior = table if prior is None else prior[prior["metric"] == metric]
    own = table[table["model"] == model].assign(unit=lambda d: d["experiment"].map(unit_of))
    base = nodes[f"base:{model}"]

    def paid(units: Sequence[str]) -> float:
        return sum(seconds[n] for n in set(base).union(*(nodes[u] for u in units)))

    def cost(units: Sequence[str], chosen: Sequence[str]) -> float:
        return paid([*chosen, *units]) - (paid(chosen) if chosen else 0.0)

    grid_cost = paid(own["unit"].unique().tolist())
    fitted = prior_fit(prior[prior["model"] != model], metric, form, share, trend)

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
            "ratio": prior_err / full_err, "population_mape_pct": mape(fitted.law_of(own), held),
            "held_rows": len(held), "stop": last.stop}


def with_priors(table: pd.DataFrame, priors: Sequence[str | Path]) -> pd.DataFrame:
    """``table``'s rows and those of the ``priors`` studies: every model a prior can use."""
    return merge([table, *(load_law_table(p) for p in priors)])


def replay(study: str | Path, *, metric: str = "loss", form: str | None = None,
           share: Sequence[str] | bool = True, trend: Sequence[str] = (), budget: float = 0.1,
           priors: Sequence[str | Path] = ()) -> pd.DataFrame:
    """`replay_model` for every model of ``study`` (the prior: the study's other models and
    those of the ``priors`` studies)."""
    table = load_law_table(study)
    prior_rows = with_priors(table, priors)
    unit_of, nodes, seconds = study_costs(study, metric)
    models = sorted(table.loc[table["metric"] == metric, "model"].unique())
    return pd.DataFrame([replay_model(table, m, unit_of, nodes, seconds, metric=metric,
                                      form=form, share=share, trend=trend, budget=budget,
                                      prior=prior_rows)
                         for m in models])


def points(law: Law, rows: pd.DataFrame) -> tuple[float, float]:
    """Mean absolute error (points) and 95 % PI coverage (%) of ``law`` on accuracy rows."""
    hat = law.predict(rows["L0"], rows["r"], rows["D"], T0=rows["T0"])
    inside = (hat.pi_low <= rows["L"]) & (rows["L"] <= hat.pi_high)
    return 100.0 * float(np.mean(np.abs(hat.L - rows["L"]))), 100.0 * float(np.mean(inside))


def accuracy_replay(study: str | Path, *, form: str = "two-step",
                    share: Sequence[str] | bool = True, trend: Sequence[str] = (),
                    priors: Sequence[str | Path] = ()) -> pd.DataFrame:
    """The two-step replay (module docstring): a row per model and task."""
    table = load_law_table(study)
    prior_rows = with_priors(table, priors)
    acc = table[table["metric"] == "accuracy"]
    loss = table[table["metric"] == "task_loss"]
    measured = pd.MultiIndex.from_frame(acc[list(CONDITION)])
    cheap = loss[~pd.MultiIndex.from_frame(loss[list(CONDITION)]).isin(measured)]
    out = []
    for model in sorted(acc["model"].unique()):
        given = cheap[cheap["model"] == model]
        for law in prior_laws(prior_rows[prior_rows["model"] != model], given,
                              metric="accuracy", form=form, share=share, trend=trend):
            rows = acc[(acc["model"] == model) & (acc["dataset"] == law.dataset)]
            (err, cover), (pop, _) = points(law.law, rows), points(law.population, rows)
            out.append({"model": model, "task": law.dataset, "task_loss_rows": law.rows,
                        "held_rows": len(rows), "prior_points": err, "pi_cover_pct": cover,
                        "population_points": pop,
                        "floor_points": 100.0 * np.sqrt(2 / np.pi) * rows["L_se"].mean()})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a completed study folder (records and log.jsonl)")
    parser.add_argument("--prior", action="append", default=[],
                        help="a study whose models join the prior (repeatable; the study's "
                        "other models are always in it)")
    parser.add_argument("--metric", default="loss")
    parser.add_argument("--form", default=None,
                        help="default: the metric's pooled form (plateau for loss)")
    parser.add_argument("--share", default=None,
                        help="shared coefficients, comma-separated (default: the form's)")
    parser.add_argument("--trend", default="",
                        help="per-model coefficients whose mean follows model size (N0)")
    parser.add_argument("--budget", type=float, default=0.1,
                        help="share of each model's grid cost its experiments may use")
    args = parser.parse_args()
    share = True if args.share is None else [c for c in args.share.split(",") if c]
    trend = [c for c in args.trend.split(",") if c]
    if args.metric == "accuracy":
        out = accuracy_replay(args.study, form=args.form or "two-step", share=share,
                              trend=trend, priors=args.prior)
    else:
        out = replay(args.study, metric=args.metric, form=args.form, share=share, trend=trend,
                     budget=args.budget, priors=args.prior)
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        print(out.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
