"""Fitting a law table group by group, and choosing among forms: held-out evidence first.

`fit(df, form, by=[...])` fits one law per group (the metric is always part of the group;
`complaw.laws.fit.fit_group` estimates each) and returns a `Fits` collection of `FitResult`,
each carrying the held-out error of the splits it is asked for (`complaw.laws.holdout`).
`compare` fits several forms on the same groups and ranks them by held-out error.

A form ranked first on held-out error is not yet a law to decide on. For a metric with a
`reference` form (`complaw.laws.metrics.Metric`: accuracy, whose measurements are noisy), a fit
qualifies only when

* its held-out split predicted at least `MIN_HELDOUT_ROWS` rows (fewer cannot tell forms apart
  within the documents' noise), and
* its held-out error is no worse than the paper's reference form's (Eq. 2) on the same rows:
  mean absolute error in points where the split reports it, else MAPE.

`credible_best` picks, per group of a `Comparison`, the first-ranked qualifying fit (a
feasible one first, as `Comparison.best` does); a group where none qualifies gets a reason that
names what would fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import FitResult, Fits, fit_group
from complaw.laws.forms import Form, default_form, forms_for, get_form
from complaw.laws.holdout import HeldOutSummary, heldout_error
from complaw.laws.metrics import get_metric
from complaw.laws.table import validate


def _by_list(by: Sequence[str] | str | None) -> list[str]:
    return [by] if isinstance(by, str) else list(by or [])


def _groups(df: pd.DataFrame, metrics: Sequence[str], by: list[str],
            what: str) -> tuple[list, list]:
    unknown = [c for c in by if c not in df.columns]
    if unknown:
        raise LawError(
            f"cannot group by {', '.join(unknown)}: no such column; "
            f"columns: {', '.join(map(str, df.columns))}"
        )
    keys = ["metric", *[c for c in by if c != "metric"]]
    rows = df[df["metric"].isin(metrics)]
    if rows.empty:
        raise LawError(
            f"{what} fits metric(s) {', '.join(metrics)}, but the table has only "
            f"{', '.join(sorted(df['metric'].unique()))}; pick another --form"
        )
    groups = [
        (dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), part)
        for key, part in rows.groupby(keys, sort=True)
    ]
    return keys, groups


def _with_companion(df: pd.DataFrame, part: pd.DataFrame, group: dict[str, Any],
                    form: Form) -> pd.DataFrame:
    """``part`` and, for a form with a companion metric, that metric's rows of the same group."""
    if form.companion is None:
        return part
    mine = df["metric"] == form.companion
    for column, value in group.items():
        if column != "metric":
            mine &= df[column] == value
    return pd.concat([part, df[mine]])


def _extra_by(forms: Iterable[Form], by: list[str]) -> list[str]:
    """``by`` and every column the ``forms`` are always fitted per (`Form.by`)."""
    return list(dict.fromkeys([*by, *(c for f in forms for c in f.by)]))


def _splits(holdout: Sequence[str] | str | None) -> list[str]:
    return [holdout] if isinstance(holdout, str) else list(holdout or [])


def _judged(f: FitResult, rows: pd.DataFrame, form: Form, splits: Sequence[str]) -> FitResult:
    """``f``, the fit of ``form`` on ``rows``, with the held-out error of each split."""
    f.heldout = MappingProxyType({
        split: heldout_error(rows, form, split, intercept=f.intercept, level=f.level).summary()
        for split in splits})
    return f


def fit(
    df: pd.DataFrame,
    form: str | Form | None = "eq1",
    by: Sequence[str] | str | None = None,
    *,
    intercept: bool | None = None,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
    bootstrap_by: str | None = None,
    holdout: Sequence[str] | str | None = None,
    pool: bool | Sequence[str] = False,
    trend: Sequence[str] = (),
) -> Fits:
    """Fit ``form`` on a law table, one law per group of ``by`` columns (and of metric).

    Rows whose metric the form does not model are left out. ``form=None`` fits every metric of
    the table with its default form (`default_form`: eq1 for loss, task loss and accuracy,
    runtime for runtime; pooled, the metric's `Metric.pooled` form: plateau for loss). A form
    with extra grouping columns (`Form.by`: ``two-step`` is fitted per dataset) is grouped by
    them too; a form with a companion metric (``two-step``: the task
    loss) gets the companion rows of each group, and groups without any (task means, records
    older than task loss) are left out; when no group has any, the error says why.
    ``intercept`` None uses the form's default (none for Eq. 1-3, as in the paper).
    ``bootstrap`` > 0 adds seeded percentile CIs from that many resamples. ``holdout`` names
    held-out splits (see `complaw.laws.holdout`) whose error each fit carries. ``pool``
    fits each metric's groups together (`complaw.laws.pooling`), sharing the coefficients it
    names (True: the form's declared `Form.share`), the others shrunk per group, the mean of
    those in ``trend`` following the groups' model size.

    Examples: Table 1 is ``fit(df, "eq1")``; Table 2 ``fit(df, "eq1", by="model")``; Table 3
    ``by="calibration"``; Table 6 ``by="dataset"``; Table 4 ``fit(df, "runtime", by="model")``.
    """
    df = validate(df)
    if df.empty:
        raise LawError("the law table has no rows; nothing to fit")
    if bootstrap_by and bootstrap_by not in df.columns:
        raise LawError(f"cannot bootstrap by {bootstrap_by!r}: no such column")
    splits = _splits(holdout)
    if form is None:
        metrics = sorted(df["metric"].unique())
        chosen = {m: default_form(m, pooled=pool is not False) for m in metrics}
        what = "the default forms"
    else:
        the_form = get_form(form)
        metrics = the_form.modelled()
        chosen = dict.fromkeys(metrics, the_form)
        what = f"form {the_form.name}"
    keys, groups = _groups(df, metrics, _extra_by(chosen.values(), _by_list(by)), what)
    pooled: list[FitResult] = []
    if trend and pool is False:
        raise LawError("--trend moves per-group coefficients of a pooled fit; add --share or "
                       "--pool (and --by model)")
    if pool is not False:
        if bootstrap:
            raise LawError("--bootstrap does not apply to a pooled fit: its intervals come from "
                           "the posterior covariance; drop --bootstrap or --share/--pool")
        count = pd.Series([g["metric"] for g, _ in groups]).value_counts()
        poolable = sorted(count[count > 1].index)  # a metric with one group is fitted alone
        pooled = [f for metric in poolable for f in _pooled(
            df, chosen[metric], metric, keys, pool, intercept, level, splits, trend)]
        groups = [(g, p) for g, p in groups if g["metric"] not in poolable]
        if not groups:
            return Fits(what, keys, pooled)
    parts = [(g, _with_companion(df, p, g, chosen[g["metric"]])) for g, p in groups]
    having = [(g, p) for g, p in parts if chosen[g["metric"]].companion is None
              or (p["metric"] == chosen[g["metric"]].companion).any()]
    results = [
        _judged(fit_group(part, chosen[group["metric"]], intercept=intercept, group=group,
                          level=level, bootstrap=bootstrap, seed=seed,
                          bootstrap_by=bootstrap_by), part, chosen[group["metric"]], splits)
        for group, part in (having or parts[:1])  # none: the first group's fit says why
    ]
    results = pooled + results
    name = ", ".join(dict.fromkeys(r.form for r in results))
    return Fits(name, keys, results)


def _pooled(df: pd.DataFrame, form: Form, metric: str, keys: list[str],
            share: bool | Sequence[str], intercept: bool | None, level: float,
            splits: Sequence[str], trend: Sequence[str] = ()) -> list[FitResult]:
    """The fits of each group of ``metric``'s rows, pooled (`complaw.laws.pooling`)."""
    from complaw.laws.pooling import Pooling, fit_pooled, results

    pooling = Pooling.of(form, keys, share, intercept, trend)
    rows = df[df["metric"] == metric]
    fitted = fit_pooled(rows, form, pooling, intercept=intercept, level=level)
    return results(fitted, rows, {"metric": metric}, level=level, splits=splits,
                   intercept=intercept)


@dataclass
class Comparison:
    """Forms fitted on the same groups, ranked within each group by held-out MAPE on
    ``split`` (then AIC; without a split, by AIC)."""

    split: str | None
    by: list[str]
    fits: list[FitResult]
    """In rank order within each group; groups in table order."""
    ranks: list[int]

    def frame(self) -> pd.DataFrame:
        """One row per (group, form): form, feasible, k, n, adj. R², AIC/BIC and their deltas
        to the group's best, the held-out n, MAPE of L and of L - L0, coverage, rank."""
        rows = []
        for f, rank in zip(self.fits, self.ranks, strict=True):
            h = _heldout(f, self.split)
            rows.append({
                **f.group, "form": f.form, "feasible": f.feasible, "k": len(f.coefficients),
                "n": f.n, "adj_r2": f.adj_r2, "r2_kind": f.r2_kind, "aic": f.aic, "bic": f.bic,
                "split": self.split, "heldout_n": h.n, "mape_pct": h.mape_pct,
                "degradation_mape_pct": h.degradation_mape_pct, "coverage": h.coverage,
                "rank": rank,
            })
        table = pd.DataFrame(rows)
        group = pd.Series([f.label for f in self.fits], index=table.index)
        for ic in ("aic", "bic"):
            table[f"delta_{ic}"] = table[ic] - table.groupby(group)[ic].transform("min")
        return table

    def best(self, feasible: bool = True) -> list[FitResult]:
        """The best fit of each group: its first-ranked feasible form (one that never predicts
        a compressed model better than L0), or with ``feasible=False`` or where no feasible
        form could be fitted, its first-ranked form."""
        groups: dict[tuple, list[FitResult]] = {}
        for f in self.fits:  # in rank order within each group
            groups.setdefault(tuple(f.group.items()), []).append(f)
        return [next((f for f in fits if f.feasible), fits[0]) if feasible else fits[0]
                for fits in groups.values()]

    def to_dict(self) -> list[dict[str, Any]]:
        """The JSON of ``complaw fit --compare --json``: each fit's `FitResult.to_dict` with
        its ``rank`` and ``heldout`` on this comparison's split."""
        out = []
        for f, rank in zip(self.fits, self.ranks, strict=True):
            d = f.to_dict()
            d["rank"] = rank
            if self.split:
                h = f.heldout.get(self.split)
                d["heldout"] = None if h is None else h.to_dict()
            out.append(d)
        return out


def _heldout(f: FitResult, split: str | None) -> HeldOutSummary:
    """The held-out error of ``f`` on ``split`` (n = 0 and no errors when it has none)."""
    return (f.heldout.get(split) if split else None) or HeldOutSummary(split or "", 0)


def _score(f: FitResult, split: str | None) -> tuple[float, float]:
    mape = _heldout(f, split).mape_pct
    return (np.inf if mape is None else mape, f.aic if np.isfinite(f.aic) else np.inf)


def compare(
    df: pd.DataFrame,
    forms: Sequence[str | Form] | None = None,
    by: Sequence[str] | str | None = None,
    *,
    holdout: Sequence[str] | str | None = "r:0.5",
    level: float = 0.95,
    pool: bool = False,
) -> Comparison:
    """Fit every form in ``forms`` (None: every registered form of each metric) on each group
    and rank them by held-out MAPE on the first split of ``holdout`` (then AIC); each fit
    carries every split of ``holdout``. Forms that cannot be fitted on a group (too few rows,
    not identifiable, no such metric, no companion rows) are left out of that group. A metric
    is grouped by ``by`` and by every column one of its forms is always fitted per
    (`Form.by`), so that all its forms compete on the same groups: with task-loss rows,
    accuracy is compared per dataset (task), where ``two-step`` can be fitted. ``pool``
    pools each form across the groups, sharing its declared coefficients (`Form.share`);
    forms that cannot be pooled (``two-step``) are left out."""
    df = validate(df)
    by_list = _by_list(by)
    splits = _splits(holdout)
    split = splits[0] if splits else None
    present = set(df["metric"])
    grouped: dict[tuple, list[FitResult]] = {}
    for metric in sorted(present):
        candidates = [
            form for form in
            ([get_form(f) for f in forms] if forms is not None else forms_for(metric))
            if form.models(metric) and (form.companion is None or form.companion in present)
        ]
        keys, groups = _groups(df, [metric], _extra_by(candidates, by_list), "compare")
        for form in candidates:
            if pool and len(groups) > 1:  # one group is fitted alone
                try:
                    pooled = _pooled(df, form, metric, keys, True, None, level, splits)
                except LawError:
                    continue
                for f in pooled:
                    grouped.setdefault(tuple(f.group.items()), []).append(f)
                continue
            for group, part in groups:
                rows = _with_companion(df, part, group, form)
                try:
                    f = _judged(fit_group(rows, form, group=group, level=level), rows, form,
                                splits)
                except LawError:
                    continue
                grouped.setdefault(tuple(group.items()), []).append(f)
    if not grouped:
        raise LawError("no form could be fitted on any group of this table")
    fits, ranks = [], []
    for key in sorted(grouped, key=lambda k: [str(v) for _, v in k]):
        ranked = sorted(grouped[key], key=lambda f: _score(f, split))
        fits += ranked
        ranks += list(range(1, len(ranked) + 1))
    return Comparison(split, by_list, fits, ranks)


MIN_HELDOUT_ROWS = 8


def _error(f: FitResult, split: str | None) -> tuple[float | None, str]:
    h = _heldout(f, split)
    if h.abs_error_points is not None:
        return h.abs_error_points, "points"
    return h.mape_pct, "%"


def doubt(comparison: Comparison, f: FitResult) -> str | None:
    """Why ``f`` must not be called the best law of its group (None: it may)."""
    reference = get_metric(f.metric).reference
    if reference is None:
        return None
    split = comparison.split
    n = _heldout(f, split).n
    if n < MIN_HELDOUT_ROWS:
        return (f"not enough evidence: {f.form} predicted {n} held-out row(s) on {split} "
                f"(needs {MIN_HELDOUT_ROWS}); measure more ratios beyond the split (or more "
                "models), and more documents per task to shrink each accuracy's standard error")
    if f.form == reference:
        return None
    ref = next((g for g in comparison.fits
                if g.form == reference and g.group == f.group), None)
    if ref is None:
        return None
    mine, unit = _error(f, split)
    theirs, _ = _error(ref, split)
    if mine is not None and theirs is not None and mine > theirs:
        return (f"not enough evidence: {f.form}'s held-out error on {split} ({mine:.2f} "
                f"{unit}) is worse than the paper's {reference} ({theirs:.2f} {unit}); more "
                "documents per task or more ratios would tell them apart")
    return None


def credible_best(comparison: Comparison,
                  feasible: bool = True) -> tuple[list[FitResult], dict[str, str]]:
    """The best qualifying fit of each group, and for the groups without one the reason (by
    the group's label)."""
    groups: dict[tuple, list[FitResult]] = {}
    for f in comparison.fits:  # in rank order within each group
        groups.setdefault(tuple(f.group.items()), []).append(f)
    chosen, reasons = [], {}
    for fits in groups.values():
        ok = [f for f in fits if doubt(comparison, f) is None]
        if not ok:
            reasons[fits[0].label] = doubt(comparison, fits[0]) or "no form qualifies"
            continue
        chosen.append(next((f for f in ok if f.feasible), ok[0]) if feasible else ok[0])
    return chosen, reasons


def with_companions(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows of ``metric`` and of the companion metrics its forms read (task loss for the
    two-step accuracy law)."""
    companions = {f.companion for f in forms_for(metric) if f.companion}
    return df[df["metric"].isin({metric, *companions})]


def best_form(df: pd.DataFrame, split: str = "r:0.5", level: float = 0.95,
              feasible: bool = True, metric: str | None = None) -> FitResult:
    """The fit (on all rows of one group) of the form with the lowest held-out MAPE on
    ``split`` (where no form can be held out, the lowest AIC) among those with the evidence to
    be called best (`doubt`): a feasible one when one qualifies, unless ``feasible`` is False.
    ``metric`` (default: the table's one metric, companions aside) is the metric to predict;
    its companion rows (task loss) are used where a form reads them."""
    if metric is None:
        own = set(df["metric"]) - {f.companion for m in set(df["metric"])
                                   for f in forms_for(m) if f.companion}
        if len(own) != 1:
            raise LawError(f"best_form needs one metric; the rows hold {', '.join(sorted(own))}")
        (metric,) = own
    best, doubts = credible_best(compare(with_companions(df, metric), None, None,
                                         holdout=split, level=level), feasible)
    best = [f for f in best if f.metric == metric]
    if len(best) != 1:
        why = "; ".join(doubts.values()) or f"{len(best)} groups of {metric} rows"
        raise LawError(f"no single {metric} law qualifies ({why}); pin one group (e.g. a "
                       "dataset) or name a form")
    return best[0]
