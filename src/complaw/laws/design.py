"""Adaptive experiment design: a law from a fraction of the grid.

The design sees a grid as a `Pool` of *units*. A unit is what runs together: one model
(uncompressed, compressed, or compressed and recovered) and every evaluation of it. A unit
has a design point (model, method, calibration, r, D), the stage executions it needs (a
compressed checkpoint shared by several recoveries is paid once) and so a cost that depends
on what already ran.

`AdaptiveDesign.steps` runs the loop:
1. the seed design (`seed_design`): every baseline; for each model and method, the smallest
   and the largest r without RFT; for each model, the largest r at the largest D;
2. fit the law on what was observed;
3. choose the next batch of units by V-optimality per unit of cost: the batch that most
   reduces the summed prediction variance of the law over the whole grid, divided by what it
   costs; exhaustively when the pool is small, greedily otherwise;
4. run it (the caller does) and go back to 2, until the budget is spent, the grid is used up
   or, with ``ci_width``, every coefficient's interval is narrower than that.

Prediction variance is the delta method's: a law with coefficient Jacobian G over the grid's
rows and J over the observed ones has Var(pred) = s² diag(G (J'J)⁻¹ G'), so the summed
variance is s² tr(G'G (J'J)⁻¹), and a batch B adds its own J_B'J_B to J'J. This is exact for the
linear (log-space OLS) forms and the Gauss-Newton approximation for the curve forms, whose
covariance is s² (J'J)⁻¹ as well. docs/design.md says why this and not bootstrap disagreement.

Every choice is a deterministic function of the observations, so a study's design is rebuilt
from its records alone: replaying `steps` against the records skips every batch already run.
`replay` runs the design on a completed grid (each unit "run" on request) and compares it
with the law fitted on the whole grid and with random subsets of the same cost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import ConfigError, LawError
from complaw.laws.fit import FitResult, Fits
from complaw.laws.forms import Form, default_form, get_form
from complaw.laws.law import law_inputs
from complaw.laws.select import fit
from complaw.laws.table import SIZE
from complaw.laws.voptimal import Information, best_batch


class DesignError(LawError):
    """The design cannot run as asked (budget, grid or records); the message names the fix."""


POINT_COLUMNS = ("unit", "model", "method", "calibration", "r", "D", "base")


@dataclass(frozen=True)
class Budget:
    """A budget: a fraction of the grid's cost, or an absolute cost in seconds."""

    fraction: float | None = None
    seconds: float | None = None

    UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

    @classmethod
    def parse(cls, text: str | float) -> Budget:
        """``0.25`` (a fraction of the grid's cost, in (0, 1]) or ``900s``, ``30m``, ``2h``."""
        raw = str(text).strip().lower()
        found = re.fullmatch(r"([0-9.eE+-]+)\s*([smh]?)", raw)
        try:
            value = float(found.group(1)) if found else float("nan")
        except ValueError:
            value = float("nan")
        if found and found.group(2):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"budget {text!r}: an absolute budget must be > 0, e.g. 2h")
            return cls(seconds=value * cls.UNITS[found.group(2)])
        if not (math.isfinite(value) and 0 < value <= 1):
            raise ConfigError(
                f"budget {text!r}: give a fraction of the grid's cost in (0, 1], e.g. 0.25, "
                "or an absolute cost in seconds, minutes or hours, e.g. 900s, 30m, 2h")
        return cls(fraction=value)

    def amount(self, total: float) -> float:
        """The budget as a cost, for a grid that costs ``total``."""
        return self.fraction * total if self.fraction is not None else float(self.seconds)

    def __str__(self) -> str:
        return (f"{self.fraction:g} of the grid" if self.fraction is not None
                else f"{self.seconds:g} s")


@dataclass
class Pool:
    """A grid as the design sees it.

    ``points`` has one row per unit (columns `POINT_COLUMNS`; ``base`` marks the uncompressed
    models, which give L0 and no law rows); ``nodes`` maps a unit to the stage executions it
    needs; ``cost`` maps a stage execution to its cost. ``costs_for(chosen)``, when given,
    recalibrates the costs once units have run (timings).
    """

    points: pd.DataFrame
    nodes: dict[str, tuple[str, ...]]
    cost: dict[str, float]
    costs_for: Callable[[Sequence[str]], dict[str, float]] | None = None

    def __post_init__(self) -> None:
        self.points = self.points.sort_values("unit", kind="stable").reset_index(drop=True)
        self.units = self.points["unit"].tolist()

    def costs(self, chosen: Sequence[str]) -> dict[str, float]:
        return self.cost if self.costs_for is None else self.costs_for(chosen)

    def paid(self, units: Sequence[str]) -> set[str]:
        return set().union(*(self.nodes[u] for u in units)) if units else set()

    def cost_of(self, units: Sequence[str], paid: set[str], costs: dict[str, float]) -> float:
        """What running ``units`` costs when the stage executions ``paid`` already ran."""
        return float(sum(costs[n] for n in self.paid(units) - paid))

    def total(self, costs: dict[str, float]) -> float:
        return self.cost_of(self.units, set(), costs)

    def check(self) -> None:
        """DesignError unless the grid has a law to fit: two design points or more."""
        law = self.points[~self.points["base"]]
        if len(law[["r", "D"]].drop_duplicates()) < 2:
            raise DesignError(
                "no law to fit: the grid varies neither r nor D (one ratio and no recovery "
                "sizes); add ratios or recovery.samples to the spec")

    def subset(self, units: Sequence[str]) -> Pool:
        """The pool of ``units`` only (e.g. the units a study holds records of)."""
        keep = set(units)
        return Pool(self.points[self.points["unit"].isin(keep)],
                    {u: n for u, n in self.nodes.items() if u in keep}, self.cost,
                    self.costs_for)


def seed_design(points: pd.DataFrame, by: Sequence[str] = ()) -> list[str]:
    """The units every law needs first: the baselines; for each model and method the smallest
    and the largest r without RFT; and for each model (and each group of ``by``, so that every
    law sees recovery) the largest r at the largest D (the first such unit in unit order)."""
    seed = points.loc[points["base"], "unit"].tolist()
    law = points[~points["base"]].sort_values("unit", kind="stable")

    def first(part: pd.DataFrame) -> list[str]:
        return part["unit"].iloc[:1].tolist()

    for _, part in law.groupby(["model", "method", "calibration"], sort=True):
        no_rft = part[part["D"] == 0]
        seed += first(no_rft[no_rft["r"] == no_rft["r"].min()])
        seed += first(no_rft[no_rft["r"] == no_rft["r"].max()])
    for _, part in law.groupby(["model", *[c for c in by if c in law.columns and c != "model"]],
                               sort=True):
        top = part[part["D"] == part["D"].max()]
        seed += first(top[top["r"] == top["r"].max()])
    return list(dict.fromkeys(seed))


def design_rows(points: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """The law rows the units of ``points`` give: each design point crossed with the datasets
    (and their L0, and the model's size where known) observed for its model."""
    law = points[~points["base"]].drop(columns=["base"])
    kept = ["model", "dataset", "metric", "L0", *([SIZE] if SIZE in observed else [])]
    l0 = observed[kept].drop_duplicates(["model", "dataset", "metric"])
    return law.merge(l0, on="model", how="inner", sort=False)


def _group_keys(df: pd.DataFrame, by: Sequence[str]) -> list[tuple]:
    cols = ["metric", *by]
    return list(zip(*(df[c].tolist() for c in cols), strict=True))


def _fit_key(result: FitResult, by: Sequence[str]) -> tuple:
    return tuple(result.group[c] for c in ["metric", *by])


def _jacobian(result: FitResult, rows: pd.DataFrame) -> np.ndarray:
    data = law_inputs(*(rows[c].to_numpy(float) for c in ("L0", "r", "D")))
    return result.law().gradient(data)


def predict(fits: Fits, rows: pd.DataFrame, by: Sequence[str]) -> np.ndarray:
    """Each row's L predicted by the law of its group (NaN where no law was fitted)."""
    out = np.full(len(rows), np.nan)
    keys = _group_keys(rows, by)
    for result in fits:
        mask = np.array([k == _fit_key(result, by) for k in keys], dtype=bool)
        if mask.any():
            part = rows[mask]
            out[mask] = result.law().predict(*(part[c].to_numpy(float)
                                               for c in ("L0", "r", "D"))).L
    return out


TRUTH = "L_true"
"""A simulated grid's noise-free L: replays then also report the error against it."""


def mape(fits: Fits | None, rows: pd.DataFrame, by: Sequence[str], column: str = "L"
         ) -> float | None:
    """MAPE (%) of the laws' predictions of ``rows``' ``column`` (None when none can be
    predicted)."""
    if fits is None or rows.empty:
        return None
    hat = predict(fits, rows, by)
    ok = np.isfinite(hat)
    if not ok.any():
        return None
    L = rows[column].to_numpy(float)[ok]
    return 100.0 * float(np.mean(np.abs(hat[ok] - L) / L))


@dataclass
class Step:
    """One step of the design: ``batch`` is what to run next (empty when the design has
    stopped, and ``stop`` says why), ``chosen`` what ran before it, ``fits`` the law fitted on
    that (None before the seed design); costs are in the pool's unit (seconds)."""

    index: int
    batch: list[str]
    chosen: list[str]
    fits: Fits | None
    spent: float
    budget: float
    total: float
    stop: str | None = None
    widths: dict[str, float] | None = None
    """The CI widths of a design whose laws are not fits (`complaw.laws.prior.PriorDesign`)."""

    def ci_widths(self) -> dict[str, float]:
        """Width of each coefficient's confidence interval, by ``group coefficient``."""
        if self.widths is not None:
            return dict(self.widths)
        if self.fits is None:
            return {}
        return {f"{r.label} {name}": c.ci_high - c.ci_low
                for r in self.fits for name, c in r.coefficients.items()}


class AdaptiveDesign:
    """The adaptive design on ``pool`` (see the module docstring): ``form`` (default: the
    metric's), fitted per group of ``by``; ``budget``; ``batch`` units per step."""

    def __init__(self, pool: Pool, *, metric: str = "loss", form: str | Form | None = None,
                 by: Sequence[str] = (), budget: Budget | str | float = 0.25, batch: int = 4,
                 ci_width: float | None = None) -> None:
        if batch < 1:
            raise ConfigError(f"batch {batch}: a batch holds at least one experiment")
        pool.check()
        self.pool = pool
        self.metric = metric
        self.form = default_form(metric) if form is None else get_form(form)
        if not self.form.models(metric):
            raise DesignError(f"form {self.form.name} models {', '.join(self.form.modelled())}, "
                              f"not {metric}; pick another --form")
        self.by = list(by)
        self.budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
        self.batch = batch
        self.ci_width = ci_width
        self.seed = seed_design(pool.points, self.by)

    def _fit(self, observed: pd.DataFrame) -> Fits | None:
        if observed.empty:
            return None
        try:
            return fit(observed, self.form, self.by)
        except LawError:
            return None

    def steps(self, observe: Callable[[list[str]], pd.DataFrame]) -> Iterator[Step]:
        """The design's steps; ``observe(units)`` returns the law rows (with a ``unit``
        column) measured on ``units``. The caller runs each step's batch before asking for
        the next step."""
        costs = self.pool.costs([])
        total = self.pool.total(costs)
        budget = self.budget.amount(total)
        seed_cost = self.pool.cost_of(self.seed, set(), costs)
        if seed_cost > budget * (1 + 1e-9):
            raise DesignError(
                f"the seed design (baselines, extreme r, D = 0 and the largest D) costs "
                f"{seed_cost / total:.1%} of the grid, more than the budget ({budget / total:.1%}"
                f"); raise --budget to at least {math.ceil(1000 * seed_cost / total) / 1000:g}")
        yield Step(0, list(self.seed), [], None, 0.0, budget, total)
        chosen = list(self.seed)
        index = 1
        while True:
            costs = self.pool.costs(chosen)
            total = self.pool.total(costs)
            budget = self.budget.amount(total)
            spent = self.pool.cost_of(chosen, set(), costs)
            observed = observe(chosen)
            observed = observed[observed["metric"] == self.metric].reset_index(drop=True)
            fits = self._fit(observed)
            step = Step(index, [], list(chosen), fits, spent, budget, total)
            if fits is None:
                step.stop = "the law cannot be fitted on what was observed"
            elif self.ci_width is not None and max(step.ci_widths().values()) < self.ci_width:
                step.stop = f"every coefficient's 95 % CI is narrower than {self.ci_width:g}"
            else:
                step.batch = self.choose(fits, observed, chosen, costs, budget - spent)
                if not step.batch:
                    step.stop = ("the grid is used up" if len(chosen) == len(self.pool.units)
                                 else "the budget is spent")
            yield step
            if step.stop:
                return
            chosen += step.batch
            index += 1

    def information(self, fits: Fits, observed: pd.DataFrame, pending: list[str]
                    ) -> tuple[dict[tuple, Information], dict[str, dict[tuple, np.ndarray]]]:
        """Per fitted group: its `Information`; per pending unit: J_u'J_u for each group."""
        rows = design_rows(self.pool.points, observed)
        rows = rows[rows["metric"] == self.metric].reset_index(drop=True)
        keys = _group_keys(rows, self.by)
        obs_keys = _group_keys(observed, self.by)
        info: dict[tuple, Information] = {}
        adds: dict[str, dict[tuple, np.ndarray]] = {u: {} for u in pending}
        pending_set = set(pending)
        for result in fits:
            key = _fit_key(result, self.by)
            mask = np.array([k == key for k in keys], dtype=bool)
            omask = np.array([k == key for k in obs_keys], dtype=bool)
            if not mask.any():
                continue
            G = _jacobian(result, rows[mask])
            J = _jacobian(result, observed[omask])
            s2 = float(result.resid_std) ** 2 if np.isfinite(result.resid_std) else 1.0
            info[key] = Information(max(s2, 1e-12), G.T @ G, J.T @ J)
            units = rows.loc[mask, "unit"].to_numpy()
            for unit in pending_set & set(units):
                Gu = G[units == unit]
                adds[unit][key] = Gu.T @ Gu
        return info, adds

    def choose(self, fits: Fits, observed: pd.DataFrame, chosen: list[str],
               costs: dict[str, float], remaining: float) -> list[str]:
        """The next batch: at most ``batch`` units costing at most ``remaining``."""
        done = set(chosen)
        pending = [u for u in self.pool.units if u not in done]
        paid = self.pool.paid(chosen)
        affordable = [u for u in pending
                      if self.pool.cost_of([u], paid, costs) <= remaining * (1 + 1e-9)]
        if not affordable:
            return []
        info, adds = self.information(fits, observed, affordable)

        def variance(batch: Sequence[str]) -> float:
            total = 0.0
            for key, i in info.items():
                extra = [adds[u][key] for u in batch if key in adds[u]]
                total += i.variance(sum(extra) if extra else None)
            return total

        def cost(batch: Sequence[str]) -> float:
            return max(self.pool.cost_of(batch, paid, costs), 1e-12)

        return best_batch(affordable, self.batch, variance, cost, remaining)


@dataclass
class Replay:
    """The result of `replay` (``to_dict`` is the JSON of ``complaw design replay``)."""

    budget: str
    adaptive: dict[str, Any]
    full: dict[str, Any]
    random: dict[str, Any]
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "adaptive": self.adaptive, "full": self.full,
                "random": self.random, "steps": self.steps}


def _random_subset(pool: Pool, seed_units: list[str], budget: float, costs: dict[str, float],
                   rng: np.random.Generator) -> list[str]:
    chosen = list(seed_units)
    spent = pool.cost_of(chosen, set(), costs)
    rest = [u for u in pool.units if u not in set(chosen)]
    for i in rng.permutation(len(rest)):
        extra = pool.cost_of([rest[i]], pool.paid(chosen), costs)
        if spent + extra <= budget * (1 + 1e-9):
            chosen.append(rest[i])
            spent += extra
    return chosen


def _random_mapes(table: pd.DataFrame, design: AdaptiveDesign, spent: float,
                  costs: dict[str, float], seeds: int, seed: int) -> dict[str, np.ndarray]:
    """Held-out MAPEs of ``seeds`` random subsets of ``table``'s units costing at most
    ``spent`` (each with the seed design), each judged on the units it left out; by column
    (L, and `TRUTH` when the table has it)."""
    pool = design.pool.subset(table["unit"].unique().tolist() + design.seed)
    columns = ["L", *([TRUTH] if TRUTH in table.columns else [])]
    out: dict[str, list[float]] = {c: [] for c in columns}
    for i in range(seeds):
        subset = set(_random_subset(pool, design.seed, spent, costs,
                                    np.random.default_rng(seed + i)))
        fits = design._fit(table[table["unit"].isin(subset)].reset_index(drop=True))
        rest = table[~table["unit"].isin(subset)]
        for column in columns:
            value = mape(fits, rest, design.by, column)
            if value is not None:
                out[column].append(value)
    return {c: np.asarray(v, dtype=float) for c, v in out.items()}


def _spread(values: dict[str, np.ndarray]) -> dict[str, Any]:
    L = values["L"]
    if not len(L):
        return {"median_mape_pct": None, "p10": None, "p90": None, "seeds": 0}
    out = {"median_mape_pct": float(np.median(L)), "p10": float(np.percentile(L, 10)),
           "p90": float(np.percentile(L, 90)), "seeds": len(L)}
    if TRUTH in values and len(values[TRUTH]):
        out["truth_median_mape_pct"] = float(np.median(values[TRUTH]))
    return out


def curve(table: pd.DataFrame, design: AdaptiveDesign, steps: Sequence[Step],
          seeds: int = 10, seed: int = 0) -> pd.DataFrame:
    """Held-out error against the fraction of cost spent, one row per step of the design that
    left units of ``table`` unchosen: the adaptive law's MAPE on them, and the median and
    10th-90th percentiles of random subsets of the same cost (`replay`'s comparison). The
    units of ``table`` are the universe: the whole grid in a replay, the units an adaptive
    study ran in its report."""
    table = table[table["metric"] == design.metric].reset_index(drop=True)
    costs = design.pool.costs(design.pool.units)
    total = design.pool.total(costs)
    rows = []
    for step in steps:
        if step.fits is None:
            continue
        held = table[~table["unit"].isin(set(step.chosen))]
        if held.empty:
            continue
        spent = design.pool.cost_of(step.chosen, set(), costs)
        rows.append({"step": step.index, "experiments": len(step.chosen),
                     "cost_fraction": spent / total,
                     "adaptive_mape_pct": mape(step.fits, held, design.by),
                     **_spread(_random_mapes(table, design, spent, costs, seeds, seed))})
    return pd.DataFrame(rows)


def replay(table: pd.DataFrame, design: AdaptiveDesign, seeds: int = 10, seed: int = 0
           ) -> Replay:
    """Replay the adaptive design on a completed grid: ``table`` holds every unit's law rows
    (a ``unit`` column); each unit is "run" when the design asks for it. Returns the adaptive
    law's MAPE on the rows of the units it did not choose, the MAPE of the law fitted on the
    whole grid on those same rows, and the median, 10th and 90th percentile of the MAPE of
    ``seeds`` random subsets of the same cost (each containing the seed design and judged on
    the units it did not choose)."""
    metric, pool = design.metric, design.pool
    table = table[table["metric"] == metric].reset_index(drop=True)
    n_coef = len(design.form.coef_names(False))
    n_units = table["unit"].nunique()
    if n_units < 2 * n_coef:
        raise DesignError(
            f"replay needs at least two experiments per coefficient: the records hold "
            f"{n_units} experiment(s) with {metric} rows and the {design.form.name} law has "
            f"{n_coef} coefficients; run more of the grid first")

    def observe(units: list[str]) -> pd.DataFrame:
        return table[table["unit"].isin(set(units))].reset_index(drop=True)

    steps = list(design.steps(observe))
    last = steps[-1]
    chosen = last.chosen
    held = table[~table["unit"].isin(set(chosen))]
    full = fit(table, design.form, design.by)
    costs = pool.costs(pool.units)  # every unit ran: the grid's true costs
    spent, total = pool.cost_of(chosen, set(), costs), pool.total(costs)
    adaptive = {"mape_pct": mape(last.fits, held, design.by), "cost_fraction": spent / total,
                "n": len(chosen), "rows_heldout": len(held), "form": design.form.name}
    whole = {"mape_pct": mape(full, held, design.by)}
    if TRUTH in table.columns:  # a simulation: the error against the noise-free law too
        adaptive["truth_mape_pct"] = mape(last.fits, held, design.by, TRUTH)
        whole["truth_mape_pct"] = mape(full, held, design.by, TRUTH)
    return Replay(budget=str(design.budget), adaptive=adaptive, full=whole,
                  random=_spread(_random_mapes(table, design, spent, costs, seeds, seed)),
                  steps=len(steps))
