"""A plan for a model you have not run, checked on the model's measured grid (no model runs).

For each model of a study, the other models are the plan's prior (`complaw.laws.planner.
PlanPrior`) and the model is a candidate known only by its L0 on one dataset (a task, for
accuracy): no rows, so its law is the prior's population law. For each target (loss <= L0 /
sigma; accuracy >= sigma L0) and RFT budget D of the grid, the plan (objective ``smallest``:
the largest ratio of the grid that meets the target at that D) is checked against the model's
measured value there: the choice *holds* when the measurement meets the target; ``r_true`` is
the largest ratio whose measurement does.
Beside it: the same plan with ``assured: true`` (the worse end of the 95 % prediction interval
must meet the target); both again with ``--given K`` rows of the model in the plan's records
(the K the population law's variance says to measure, `complaw.laws.holdout.variance_optimal`,
as in the ``model:K`` split; default 2); and the plan from the model's own law of the same form
fitted on all its rows (in-sample: what that form can do with the whole grid).

    python benchmarks/plan_prior.py results/cpu-grid
    python benchmarks/plan_prior.py results/cpu-grid --prior results/cpu-new-model
    python benchmarks/plan_prior.py results/cpu-grid --metric accuracy
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from complaw.experiment.records import load_law_table
from complaw.laws.fit import fit_group
from complaw.laws.forms import default_form
from complaw.laws.holdout import variance_optimal
from complaw.laws.metrics import get_metric
from complaw.laws.planner import parse_plan, plan
from complaw.laws.prior import prior_fit
from complaw.laws.table import merge

SIGMAS = {"loss": (0.8, 2 / 3, 0.5), "accuracy": (0.9, 0.8, 0.7)}
"""Targets per metric: loss at most 1.25, 1.5 and 2 times L0; accuracy at least 90, 80 and
70 % of L0."""


def largest_r(result, L0: float) -> float | None:
    """The plan's choice for the candidate at ``L0`` (candidates of one model differ by L0):
    the largest feasible ratio (objective smallest), None when none is."""
    rs = [c.r for c in result.choices if np.isclose(c.L0, L0)]
    return max(rs) if rs else None


def plans(model: str, metric: str, bases: pd.Series, sigma: float, D: float,
          ratios: list[float], form: str, own_law: str, prior: pd.DataFrame,
          given: pd.DataFrame) -> dict:
    """The plans (module docstring) of ``model`` at its L0 on each dataset (``bases``) for the
    ``sigma`` target of ``metric`` at RFT budget ``D``; ``own_law``: FILE.json#NAME;
    ``given``: the model's rows the plans with rows see."""
    def spec(how: dict, **extra) -> dict:
        return {"prior": {"study": "prior", "form": form},
                "target": {"metric": metric, "sigma": sigma},
                "budget": {"rft_tokens": float(D)}, "objective": "smallest", "ratios": ratios,
                "candidates": [{"name": model, "L0": {metric: float(L0)}, **how}
                               for L0 in bases], **extra}

    rows = {"records": "given"}
    return {"prior": plan(parse_plan(spec({})), prior=prior),
            "prior_assured": plan(parse_plan(spec({}, assured=True)), prior=prior),
            "rows": plan(parse_plan(spec({}, **rows)), given, prior=prior),
            "rows_assured": plan(parse_plan(spec({}, assured=True, **rows)), given, prior=prior),
            "own": plan(parse_plan(spec({"law": own_law})), prior=prior)}


def check(study: str | Path, priors: Sequence[str | Path] = (), form: str | None = None,
          metric: str = "loss", given: int = 2) -> pd.DataFrame:
    """One row per model, dataset, target and D: each plan's ratio and whether it holds."""
    table = load_law_table(study)
    table = table[(table["metric"] == metric) & (table["r"] > 0)]
    prior = merge([table, *(load_law_table(p) for p in priors)])
    form = form or default_form(metric, pooled=True).name
    measure = get_metric(metric)
    ratios = sorted(float(r) for r in table["r"].unique())
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        own_laws = Path(tmp) / "own.json"
        laws = {m: fit_group(rows, form).law() for m, rows in table.groupby("model")}
        own_laws.write_text(json.dumps([law.to_dict() for law in laws.values()]))
        for model, rows in table.groupby("model"):
            bases = rows.groupby("dataset")["L0"].first()
            population = prior_fit(prior[prior["model"] != model], metric, form).law_of(rows)
            picked = rows.iloc[variance_optimal(population, rows, given)]
            for sigma in SIGMAS[metric]:
                for D in sorted(rows["D"].unique()):
                    made = plans(str(model), metric, bases, sigma, D, ratios, form,
                                 f"{own_laws}#{laws[model].name}", prior, picked)
                    for dataset, L0 in bases.items():
                        measured = rows[(rows["dataset"] == dataset) & (rows["D"] == D)]
                        L = measured.set_index("r")["L"]
                        target = L0 * measure.sigma(sigma)
                        meets = [r for r, v in L.items() if measure.meets(v, target)]
                        row = {"model": model, "dataset": dataset, "sigma": round(sigma, 3),
                               "D": D, "r_true": float(max(meets)) if len(meets) else 0.0}
                        for name, result in made.items():
                            r = largest_r(result, L0)
                            row[f"r_{name}"] = r
                            row[f"holds_{name}"] = r is None or measure.meets(L[r], target)
                        out.append(row)
    return pd.DataFrame(out)


def summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Per model and plan: how often its choice holds, and its mean |r - r_true|."""
    rows = []
    for model, g in cases.groupby("model"):
        for name in ("prior", "prior_assured", "rows", "rows_assured", "own"):
            r = g[f"r_{name}"].astype(float).fillna(0.0)
            rows.append({"model": model, "plan": name, "cases": len(g),
                         "holds_pct": 100.0 * g[f"holds_{name}"].mean(),
                         "none_pct": 100.0 * g[f"r_{name}"].isna().mean(),
                         "mean_abs_r_error": float((r - g["r_true"]).abs().mean()),
                         "mean_r_minus_true": float((r - g["r_true"]).mean())})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a completed study folder (records)")
    parser.add_argument("--prior", action="append", default=[],
                        help="a study whose models join the prior (repeatable)")
    parser.add_argument("--metric", default="loss", choices=sorted(SIGMAS))
    parser.add_argument("--form", default=None,
                        help="default: the metric's pooled form (plateau for loss)")
    parser.add_argument("--given", type=int, default=2,
                        help="rows of the model the plans with rows see (default 2)")
    parser.add_argument("--cases", action="store_true", help="print every case too")
    args = parser.parse_args()
    cases = check(args.study, args.prior, args.form, args.metric, args.given)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        if args.cases:
            print(cases.to_string(index=False))
        print(summary(cases).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
