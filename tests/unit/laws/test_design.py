"""The adaptive design on synthetic pools: V-optimal batches against a brute-force search,
coefficients recovered from a quarter of the cost, budgets, determinism, bad input."""

import itertools

import numpy as np
import pandas as pd
import pytest

from complaw.errors import ConfigError
from complaw.laws.design import (
    AdaptiveDesign,
    Budget,
    DesignError,
    Pool,
    replay,
    seed_design,
)
from complaw.laws.published import get_law
from complaw.laws.select import fit

TRUE = get_law("paper:all:intrinsic")  # eq1: alpha 0.63, beta 1.72, gamma 1.16
L0S = {"wikitext2": 3.2, "ptb": 3.9, "alpaca": 2.4}


def synthetic(ratios=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), sizes=(0, 256, 1024, 4096),
              noise=0.05, seed=0, equal_costs=False):
    """A one-model grid from the paper's Eq. 1 law with log-normal noise: one compress node
    per ratio (shared by its recoveries), one recover node per (r, D), one evaluation per
    unit. Costs: params x tokens-like, or all equal."""
    rng = np.random.default_rng(seed)
    points = [{"unit": "base", "model": "m", "method": "prunenet", "calibration": "none",
               "r": 0.0, "D": 0.0, "base": True}]
    nodes = {"base": ("eval:base",)}
    cost = {"eval:base": 1.0}
    rows = []
    for r in ratios:
        cost[f"c{r}"] = 0.0 if equal_costs else 0.5
        for D in sizes:
            unit = f"u{r:.1f}-{D:05d}"
            points.append({"unit": unit, "model": "m", "method": "prunenet",
                           "calibration": "none", "r": r, "D": float(D), "base": False})
            chain = [f"c{r}", f"e{unit}"] + ([f"t{unit}"] if D else [])
            nodes[unit] = tuple(chain)
            cost[f"e{unit}"] = 1.0
            if D:
                cost[f"t{unit}"] = 0.0 if equal_costs else D / 256
            for dataset, L0 in L0S.items():
                L = TRUE.predict(L0, r, D).L[0] * np.exp(noise * rng.normal())
                rows.append({"model": "m", "method": "prunenet", "calibration": "none",
                             "dataset": dataset, "metric": "loss", "L": L, "L0": L0, "r": r,
                             "D": float(D), "unit": unit})
    return pd.DataFrame(rows), Pool(pd.DataFrame(points), nodes, cost)


def oracle(table):
    return lambda units: table[table["unit"].isin(set(units))].reset_index(drop=True)


def run(design, table):
    steps = []
    for step in design.steps(oracle(table)):
        steps.append(step)
    return steps


def test_budget_parsing():
    assert Budget.parse("0.25").fraction == 0.25 and Budget.parse(1).fraction == 1.0
    assert Budget.parse("30m").seconds == 1800 and Budget.parse("2h").seconds == 7200
    assert Budget.parse("900s").amount(10_000) == 900
    for bad in ("0", "-0.1", "1.5", "abc", "0h"):
        with pytest.raises(ConfigError, match="budget"):
            Budget.parse(bad)


def test_seed_design_has_baselines_extreme_ratios_and_the_largest_d():
    table, pool = synthetic()
    seed = seed_design(pool.points)
    assert seed == ["base", "u0.1-00000", "u0.9-00000", "u0.9-04096"]


def test_the_first_batch_minimises_summed_prediction_variance_by_brute_force():
    """Independent check: for Eq. 1 (linear in log space) the prediction variance of row x is
    s² x'(X'X)⁻¹x with x = (log L0, log(1+r), log(1+1/(D+1))). Among all batches of two from a
    small equal-cost pool, the design's first batch is the one with the least summed variance
    over the whole grid."""
    table, pool = synthetic(ratios=(0.2, 0.4, 0.6, 0.8), sizes=(0, 64, 1024), equal_costs=True)
    design = AdaptiveDesign(pool, form="eq1", budget=1.0, batch=2)
    steps = design.steps(oracle(table))
    seed = next(steps).batch
    first = next(steps)
    assert len(first.batch) == 2

    def features(rows):
        return np.column_stack([np.log(rows["L0"]), np.log1p(rows["r"]),
                                np.log1p(1 / (rows["D"] + 1))])

    grid = features(table)
    summed = {}
    pending = [u for u in pool.units if u not in seed]
    for batch in itertools.combinations(pending, 2):
        X = features(table[table["unit"].isin(set(seed) | set(batch))])
        summed[batch] = np.trace(grid @ np.linalg.inv(X.T @ X) @ grid.T)
    best = min(summed, key=summed.get)
    assert tuple(first.batch) == best
    assert summed[best] < np.median(list(summed.values()))  # not a degenerate tie


def test_a_quarter_of_the_cost_recovers_the_coefficients_within_the_full_grid_ci():
    table, pool = synthetic()
    steps = run(AdaptiveDesign(pool, form="eq1", budget=0.25, batch=4), table)
    last = steps[-1]
    assert last.stop == "the budget is spent" and last.spent <= last.budget
    assert last.spent / last.total <= 0.25
    full = fit(table, "eq1").only()
    for name, estimate in last.fits.only().estimates().items():
        c = full.coefficients[name]
        assert c.ci_low <= estimate <= c.ci_high, (name, estimate, c.ci_low, c.ci_high)


@pytest.mark.parametrize("budget", ["0.35", "0.6", "40s"])
def test_never_chooses_twice_and_never_exceeds_the_budget(budget):
    table, pool = synthetic(ratios=(0.2, 0.5, 0.8))
    steps = run(AdaptiveDesign(pool, form="eq1", budget=budget, batch=3), table)
    chosen = [u for s in steps for u in s.batch]
    assert len(chosen) == len(set(chosen))
    assert chosen == steps[-1].chosen
    costs = pool.costs(chosen)
    for step in steps[1:]:
        assert step.spent <= step.budget * (1 + 1e-9)
        assert pool.cost_of(step.chosen + step.batch, set(), costs) <= step.budget * (1 + 1e-9)


def test_ci_width_stops_the_design_early():
    table, pool = synthetic()
    steps = run(AdaptiveDesign(pool, form="eq1", budget=1.0, ci_width=10.0), table)
    assert len(steps) == 2 and "narrower than 10" in steps[-1].stop


def test_replay_is_deterministic_and_reports_the_three_numbers():
    table, pool = synthetic()

    def once(seed):
        return replay(table, AdaptiveDesign(pool, form="eq1", budget=0.3), seeds=5,
                      seed=seed).to_dict()

    a, b = once(3), once(3)
    assert a == b
    assert set(a) >= {"adaptive", "full", "random"}
    assert {"mape_pct", "cost_fraction", "n"} <= set(a["adaptive"])
    assert {"median_mape_pct", "p10", "p90"} <= set(a["random"])
    assert a["random"]["p10"] <= a["random"]["median_mape_pct"] <= a["random"]["p90"]
    assert a["adaptive"]["cost_fraction"] <= 0.3
    assert a["random"] != once(4)["random"]  # the seed draws the random subsets
    # the law fitted on everything is at least as close on the held-out rows (in-sample)
    assert a["full"]["mape_pct"] <= a["adaptive"]["mape_pct"] * 1.05


def test_bad_input_names_the_fix():
    table, pool = synthetic(ratios=(0.5,), sizes=(0,))
    with pytest.raises(DesignError, match="no law to fit.*add ratios or recovery.samples"):
        AdaptiveDesign(pool, form="eq1")
    table, pool = synthetic(ratios=(0.3, 0.6), sizes=(0,))
    with pytest.raises(DesignError, match="two experiments per coefficient"):
        replay(table, AdaptiveDesign(pool, form="eq1", budget=1.0))
    table, pool = synthetic()
    with pytest.raises(DesignError, match="seed design .* raise --budget to at least"):
        next(AdaptiveDesign(pool, form="eq1", budget=0.01).steps(oracle(table)))
