"""A prior from other studies: a new model's law from its baseline and a few of its rows.

The prior study's models define the shared coefficients and the spread between models: a
pooled fit (`complaw.laws.pooling.fit_pooled`, grouped by model). A new model's law is that
fit's population law updated by the new model's own rows (`PooledFit.update`): its per-model
coefficients move from the prior mean as far as its rows say, its shared ones barely. A prior
only transfers between like studies, so the two must agree on the metric, and the new one's
methods and datasets must be among the prior's (`check_match`); the new models' own rows are
never part of the prior.

A two-step accuracy law (`complaw.laws.twostep`) takes its prior a task at a time: step 1, the
task-loss law, from the prior's task-loss rows exactly as a loss law (so a new model's cheap
task-loss rows move it), and the link from task loss to accuracy fitted on every model's
(task loss, accuracy) pairs, the prior's and the new model's (one link per task, shared by the
models, as in a fit of all models together).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import block_diag

from complaw.errors import LawError
from complaw.laws.design import Budget, DesignError, Pool, Step, design_rows
from complaw.laws.forms import Form, default_form, get_form
from complaw.laws.law import Law
from complaw.laws.link import LinkFit, fit_link
from complaw.laws.pooling import PooledFit, Pooling, fit_pooled, size_of
from complaw.laws.table import SIZE, validate
from complaw.laws.twostep import TwoStepForm, pairs, task_chance


class PriorMismatchError(LawError):
    """The prior study measured something else than the new one (metric, method, datasets)."""


def check_match(prior: pd.DataFrame, new: pd.DataFrame, metric: str,
                columns: Sequence[str] = ("method", "dataset")) -> None:
    """PriorMismatchError unless both tables hold ``metric`` and the new one's methods and
    datasets (``columns``) of that metric are among the prior's."""
    if metric not in set(new["metric"]):
        raise PriorMismatchError(
            f"the new records have no {metric} rows (they hold "
            f"{', '.join(sorted(set(new['metric'])))}); pick one of those with --metric")
    if metric not in set(prior["metric"]):
        raise PriorMismatchError(
            f"the prior study has no {metric} rows (it holds "
            f"{', '.join(sorted(set(prior['metric'])))}); give a prior that measured {metric}")
    p, n = prior[prior["metric"] == metric], new[new["metric"] == metric]
    for column in columns:
        extra = sorted(set(n[column].astype(str)) - set(p[column].astype(str)))
        if extra:
            raise PriorMismatchError(
                f"the prior study has no {metric} rows of {column} {', '.join(extra)} (it has "
                f"{', '.join(sorted(set(p[column].astype(str))))}); give a prior that measured "
                f"the new study's {column}s, or keep only the matching rows")


@dataclass
class PriorLaw:
    """One new model's law from a prior: ``law`` (the posterior), ``population`` (the prior's
    law for a model it has not seen), ``rows`` the new model's rows it was updated by;
    ``dataset``: the task of a two-step accuracy law (None: one law for the model)."""

    model: str
    law: Law
    population: Law
    rows: int
    prior: str
    dataset: str | None = None

    def moved(self) -> dict[str, dict[str, float]]:
        """Per coefficient: its prior mean, its value here, and the move in prior s.d."""
        sd = np.sqrt(np.maximum(np.diag(np.asarray(self.population.cov)), 0.0))
        out = {}
        for j, name in enumerate(self.population.coef_names):
            before, after = self.population.coefficients[name], self.law.coefficients[name]
            out[name] = {"prior": before, "posterior": after,
                         "moved_sd": (after - before) / sd[j] if sd[j] > 0 else 0.0}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "prior": self.prior,
                "rows": self.rows,
                "law": self.law.to_dict(), "formula": self.law.formula(),
                "moved": self.moved()}


def prior_fit(prior: pd.DataFrame, metric: str, form: str | Form | None = None,
              share: Sequence[str] | bool = True, trend: Sequence[str] = ()) -> PooledFit:
    """The pooled fit by model of ``prior``'s ``metric`` rows (``share``: the shared
    coefficients, True: the form's declared ones; ``trend``: the per-model ones whose mean
    follows model size, `complaw.laws.pooling`)."""
    form = default_form(metric, pooled=True) if form is None else get_form(form)
    rows = validate(prior)
    rows = rows[rows["metric"] == metric].reset_index(drop=True)
    if rows["model"].nunique() < 2:
        raise LawError(f"a prior needs two models or more to tell their spread; the prior has "
                       f"{rows['model'].nunique()} with {metric} rows")
    return fit_pooled(rows, form, Pooling.of(form, ["model"], share, trend=trend))


def prior_laws(prior: pd.DataFrame, new: pd.DataFrame, *, metric: str = "loss",
               form: str | Form | None = None, share: Sequence[str] | bool = True,
               trend: Sequence[str] = (), name: str = "prior",
               bases: pd.DataFrame | None = None) -> list[PriorLaw]:
    """Each model of ``new``: its law from the pooled fit of ``prior`` (called ``name``; the
    new models' rows left out of it) updated by the model's own ``metric`` rows (a two-step
    form: each model's law per task, module docstring). ``bases`` (the columns of
    `complaw.experiment.records.base_table`) adds the models that have only run their
    baseline: their law is the population law, at their size `SIZE` for a trend (rows 0)."""
    prior, new = validate(prior), validate(new)
    form = default_form(metric, pooled=True) if form is None else get_form(form)
    if isinstance(form, TwoStepForm):
        return _two_step_laws(prior, new, form, share, trend, name, bases)
    new, waiting = _checked(prior, new, bases, metric)
    fitted = prior_fit(prior[~prior["model"].isin({*new["model"], *waiting["model"]})],
                       metric, form, share, trend)
    out = []
    for model, rows in new.groupby("model", sort=True):
        rows = rows.reset_index(drop=True)
        out.append(PriorLaw(str(model), fitted.update(rows, str(model)),
                            fitted.law_of(rows), len(rows), name))
    for model, rows in waiting.groupby("model", sort=True):
        size = size_of(rows)
        out.append(PriorLaw(str(model), fitted.update(new.iloc[:0], str(model), size),
                            fitted.law(None, size), 0, name))
    return sorted(out, key=lambda p: p.model)


def _checked(prior: pd.DataFrame, new: pd.DataFrame, bases: pd.DataFrame | None,
             metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``new``'s ``metric`` rows and the ``bases`` rows of ``metric`` of the models with none
    (only a baseline), once `check_match` passed on what each holds."""
    own = new[new["metric"] == metric]
    waiting = (pd.DataFrame(columns=["model", "dataset", "metric", "L0", SIZE])
               if bases is None or bases.empty else
               bases[(bases["metric"] == metric) & ~bases["model"].isin(set(own["model"]))])
    if len(own) or waiting.empty:
        check_match(prior, new, metric)
    if len(waiting):
        check_match(prior, waiting, metric, ("dataset",))
    return own, waiting


def _two_step_laws(prior: pd.DataFrame, new: pd.DataFrame, form: TwoStepForm,
                   share: Sequence[str] | bool, trend: Sequence[str], name: str,
                   bases: pd.DataFrame | None) -> list[PriorLaw]:
    """`prior_laws` of a two-step form: per task, step 1 from the prior's task-loss rows, the
    link on every model's pairs, composed as the form's coefficients (step, link, chance),
    starting from the model's base task loss (T0)."""
    step_metric, metric = form.companion, form.metrics[0]
    losses, waiting = _checked(prior, new, bases, step_metric)
    tasks = set(losses["dataset"]) | set(waiting["dataset"])
    missing = sorted(tasks - set(prior.loc[prior["metric"] == metric, "dataset"]))
    if missing:
        raise PriorMismatchError(
            f"the prior study has no {metric} rows of task(s) {', '.join(missing)}: the "
            f"{form.name} law's link needs them; give a prior that measured them")
    out = []
    new = new[new["metric"].isin([metric, step_metric])]
    for task in sorted(tasks):
        rows = new[new["dataset"] == task]
        given = prior[(prior["dataset"] == task)
                      & ~prior["model"].isin({*new["model"], *waiting["model"]})]
        both = pd.concat([given, rows], ignore_index=True)
        acc, loss = both[both["metric"] == metric], both[both["metric"] == step_metric]
        link = fit_link(form.link, *pairs(acc, loss), task_chance(acc, f"task {task}"),
                        what=f"the {form.link} link of task {task}")

        known = waiting[waiting["dataset"] == task]
        for step in prior_laws(given, rows, metric=step_metric, form=form.step, share=share,
                               trend=trend, name=name, bases=known):
            mine = pd.concat([rows[rows["metric"] == step_metric], known])
            T0 = float(mine.loc[mine["model"] == step.model, "L0"].iloc[0])
            own = _composed(step.law, link, form, str(task), T0)
            out.append(PriorLaw(step.model, own, _composed(step.population, link, form, str(task)),
                                step.rows, name, str(task)))
    return out


def _composed(step: Law, link: LinkFit, form: TwoStepForm, task: str, T0: float = np.nan) -> Law:
    """A two-step law of ``task``: step 1's coefficients, then the link's, then the chance level
    (fixed, hence the zero block of the covariance)."""
    return Law(name=f"{step.name}:{form.name}:{task}", form=form.name, metric=form.metrics[0],
               coefficients={**step.coefficients, **link.estimates()},
               source=f"{step.source}; {form.link} link of {link.n} pairs",
               cov=block_diag(step.cov, link.cov, np.zeros((1, 1))),
               df_resid=link.df_resid, resid_std=link.resid_std, T0=T0)


@dataclass
class PriorStep:
    """One step of `prior_design`: the law from what ran before it (``chosen``), what it
    cost (``spent``), the next ``batch`` (empty once ``stop`` says why the design stopped)."""

    index: int
    law: Law
    chosen: list
    spent: float
    batch: list
    stop: str | None = None

    def ci_widths(self) -> dict[str, float]:
        """Each coefficient's 95 % interval width (delta method, normal quantile)."""
        sd = np.sqrt(np.maximum(np.diag(np.asarray(self.law.cov)), 0.0))
        return {name: float(2 * 1.959964 * v)
                for name, v in zip(self.law.coef_names, sd, strict=True)}

    def ci_width(self) -> float:
        """The widest of `ci_widths`."""
        return max(self.ci_widths().values())


def prior_design(fitted: PooledFit, grid: pd.DataFrame, observe, cost, budget: float, *,
                 batch: int = 1, ci_width: float | None = None, label: str = "new"):
    """The experiments of a new model chosen with a prior (``fitted``, `prior_fit`): each
    step updates the new model's law by the rows measured so far (``observe(units)``) and
    picks the ``batch`` units of ``grid`` (the model's law rows, a ``unit`` column; L unread)
    that shrink that law's summed prediction variance over ``grid`` the most per unit of
    cost (`complaw.laws.voptimal.law_batch`); ``cost(units, chosen)`` is what ``units`` cost
    once ``chosen`` ran. Stops when the next unit would pass ``budget``, the grid is used up
    or every coefficient's 95 % interval is narrower than ``ci_width``. Yields `PriorStep`s;
    the caller runs each batch before asking for the next step."""
    from complaw.laws.voptimal import law_batch

    size = size_of(grid)
    chosen: list = []
    index = 0
    while True:
        spent = cost(chosen, []) if chosen else 0.0
        rows = observe(chosen) if chosen else grid.iloc[:0].assign(L=np.nan)
        step = PriorStep(index, fitted.update(rows.reset_index(drop=True), label, size),
                         list(chosen), spent, [])
        pending = grid[~grid["unit"].isin(set(chosen))]
        if ci_width is not None and step.ci_width() < ci_width:
            step.stop = f"every coefficient's 95 % CI is narrower than {ci_width:g}"
        elif pending.empty:
            step.stop = "the grid is used up"
        else:
            step.batch = law_batch(step.law, grid, grid["unit"].tolist(), batch,
                                   lambda b, c=list(chosen): max(cost(b, c), 1e-12), budget - spent,
                                   candidates=pending["unit"].tolist())
            if not step.batch:
                step.stop = "the budget is spent"
        yield step
        if step.stop:
            return
        chosen += step.batch
        index += 1


class PriorDesign:
    """The adaptive design of a study whose models are new to a prior study
    (`complaw run --prior STUDY`): first the new models' baselines (their L0), then, one new
    model at a time, the experiments `prior_design` picks for that model's law, within the
    model's share of the budget (the share of the grid's cost its units make). It steps like
    `complaw.laws.design.AdaptiveDesign`, so a study runs, resumes and reports it alike.
    ``prior`` is the prior study's law table (the new models' rows are left out of it;
    ``share``: the coefficients its pooled fit shares, True: the form's declared ones);
    ``baselines()`` gives the L0 of the new models once their baselines ran (columns model,
    dataset, metric, L0)."""

    def __init__(self, pool: Pool, prior: pd.DataFrame, baselines: Callable[[], pd.DataFrame],
                 *, metric: str = "loss", form: str | Form | None = None,
                 budget: Budget | str | float = 0.25, batch: int = 1,
                 ci_width: float | None = None, share: Sequence[str] | bool = True,
                 trend: Sequence[str] = ()) -> None:
        pool.check()
        self.pool, self.metric, self.batch, self.ci_width = pool, metric, batch, ci_width
        self.budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
        self.models = sorted(pool.points["model"].unique())
        self.prior = validate(prior)
        # the methods now, before any compute; the datasets once the baselines named them
        check_match(self.prior, pool.points[~pool.points["base"]].assign(metric=metric),
                    metric, ("method",))
        self.fitted = prior_fit(self.prior[~self.prior["model"].isin(self.models)], metric,
                                form, share, trend)
        self.form, self.by, self.baselines = self.fitted.form, ["model"], baselines

    def _rows(self, model: str) -> pd.DataFrame:
        """The law rows the model's units give, at the L0 its baseline measured."""
        base = self.baselines()
        base = base[(base["model"] == model) & (base["metric"] == self.metric)]
        if base.empty:
            raise DesignError(f"the baseline of {model} has no {self.metric}; the prior "
                              f"design needs it (its L0)")
        points = self.pool.points[self.pool.points["model"] == model]
        rows = design_rows(points, base)
        check_match(self.prior, rows, self.metric)
        return rows

    def steps(self, observe: Callable[[list[str]], pd.DataFrame]) -> Iterator[Step]:
        """The baselines, then each new model's steps (`AdaptiveDesign.steps`' protocol)."""
        points = self.pool.points
        costs = self.pool.costs([])
        total, budget = self.pool.total(costs), self.budget.amount(self.pool.total(costs))
        chosen = points.loc[points["base"], "unit"].tolist()
        yield Step(0, list(chosen), [], None, 0.0, budget, total)
        index, stops = 1, []
        for model in self.models:
            costs = self.pool.costs(chosen)
            total, before = self.pool.total(costs), list(chosen)
            mine = points.loc[points["model"] == model, "unit"].tolist()
            share = self.budget.amount(total) * self.pool.cost_of(mine, set(), costs) / total

            def cost(units, done, before=before, costs=costs):
                return self.pool.cost_of(units, self.pool.paid([*before, *done]), costs)

            def seen(units):
                rows = observe(list(units))
                return rows[rows["metric"] == self.metric]

            base = self.pool.cost_of([u for u in mine if u in before], set(), costs)
            for step in prior_design(self.fitted, self._rows(model), seen, cost, share - base,
                                     batch=self.batch, ci_width=self.ci_width, label=model):
                chosen = [*before, *step.chosen]
                widths = {f"{model} {k}": v for k, v in step.ci_widths().items()}
                spent = self.pool.cost_of(chosen, set(), costs)
                if step.stop:
                    stops.append(f"{model}: {step.stop}")
                    last = Step(index, [], chosen, None, spent, self.budget.amount(total),
                                total, "; ".join(stops), widths)
                    break
                yield Step(index, step.batch, chosen, None, spent, self.budget.amount(total),
                           total, None, widths)
                index += 1
        yield last
