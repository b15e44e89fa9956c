"""Which law a report may call best, and a planner may plan with: held-out evidence first.

A form ranked first on held-out error is not yet a law to decide on. For a metric listed in
`REFERENCE` (accuracy, whose measurements are noisy), a fit qualifies only when

* its held-out split predicted at least `MIN_HELDOUT_ROWS` rows (fewer cannot tell forms apart
  within the documents' noise), and
* its held-out error is no worse than the paper's reference form's (Eq. 2) on the same rows:
  mean absolute error in points where the split reports it, else MAPE.

`credible_best` picks, per group of a `Comparison`, the first-ranked qualifying fit (a
feasible one first, as `Comparison.best` does); a group where none qualifies gets a reason that
names what would fix it.
"""

from __future__ import annotations

import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import Comparison, FitResult, compare
from complaw.laws.forms import forms_for

MIN_HELDOUT_ROWS = 8
REFERENCE = {"accuracy": "eq2"}
"""Metric -> the form a best law of that metric must not lose to on held-out rows."""


def _error(f: FitResult, split: str | None) -> tuple[float | None, str]:
    h = (f.heldout.get(split) if split else None) or {}
    points = h.get("abs_error_points")
    if points is not None:
        return float(points), "points"
    mape = h.get("mape_pct")
    return (None if mape is None else float(mape)), "%"


def doubt(comparison: Comparison, f: FitResult) -> str | None:
    """Why ``f`` must not be called the best law of its group (None: it may)."""
    reference = REFERENCE.get(f.metric)
    if reference is None:
        return None
    split = comparison.split
    h = (f.heldout.get(split) if split else None) or {}
    n = int(h.get("n") or 0)
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
