"""Held-out error: the statistic a law is judged by.

A *split* says which rows a law is fitted on and which it must predict:

| split | fit on | predict |
|---|---|---|
| ``r:X`` | r <= X | r > X (extrapolation in compression) |
| ``D`` | all but the largest D | the largest D (extrapolation in data) |
| ``dataset``, ``model``, ``method`` (any column) | the other levels | one level, each in turn |
| ``kfold:K`` | K-1 folds | the K-th, each in turn (seeded) |

Baselines (r = 0) always stay in the fit and are never predicted. For each split,
`heldout_error` reports the number of test rows, the MAPE of L, the MAPE of the degradation
L - L0, and the coverage of the prediction interval (the share of test rows inside it); the
predictions themselves are kept for figures. For accuracy it adds the mean absolute error in
accuracy points, and, where the rows carry their standard errors ``L_se``, the measurement noise
floor: sqrt(2/pi) sigma is the expected |error| of a normal measurement with s.d. sigma, so a
perfect law's mean absolute error is sqrt(2/pi) mean(L_se) (points, or % of L for other
metrics). `noise_floor` is the error a law cannot be expected to beat from seeds: one seed's L
against the other seeds' mean on the same cells.

Only the form's own metric is predicted. A form with a companion metric (``two-step``: task
loss beside accuracy) is fitted on the companion rows too, except those at a held-out
condition (same model, method, calibration, dataset, r and D as a test row).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import fit_group, inputs_of
from complaw.laws.forms import Form, get_form
from complaw.laws.table import COLUMNS, NUMERIC_COLUMNS, validate

Folds = list[tuple[np.ndarray, np.ndarray]]
"""(train, test) positional row indices, one pair per fold."""
KFOLD_SEED = 0


def _baseline(df: pd.DataFrame) -> np.ndarray:
    return (df["r"].to_numpy(float) == 0.0)


def _ratio(df: pd.DataFrame, arg: str) -> Folds:
    try:
        x = float(arg)
    except ValueError:
        raise LawError(f"split r:{arg}: the threshold must be a number, e.g. r:0.5") from None
    r = df["r"].to_numpy(float)
    test = np.flatnonzero(r > x)
    return [(np.flatnonzero(r <= x), test)] if len(test) else []


def _largest_d(df: pd.DataFrame, arg: str) -> Folds:
    if arg:
        raise LawError(f"split D:{arg}: D takes no argument (it holds out the largest D)")
    D = df["D"].to_numpy(float)
    candidates = ~_baseline(df)
    if len(np.unique(D[candidates])) < 2:
        return []
    test = np.flatnonzero(candidates & (D == D[candidates].max()))
    return [(np.setdiff1d(np.arange(len(df)), test), test)]


def _kfold(df: pd.DataFrame, arg: str) -> Folds:
    try:
        k = int(arg)
    except ValueError:
        raise LawError(f"split kfold:{arg}: K must be an integer >= 2, e.g. kfold:5") from None
    if k < 2:
        raise LawError(f"split kfold:{k}: K must be >= 2")
    rows = np.flatnonzero(~_baseline(df))
    rng = np.random.default_rng(KFOLD_SEED)
    parts = np.array_split(rng.permutation(rows), min(k, len(rows)))
    everything = np.arange(len(df))
    return [(np.setdiff1d(everything, t), np.sort(t)) for t in parts if len(t)]


def _level(column: str) -> Callable[[pd.DataFrame, str], Folds]:
    def folds(df: pd.DataFrame, arg: str) -> Folds:
        if column not in df.columns:
            raise LawError(f"split {column}: the table has no column {column!r}")
        labels = df[column].astype(str).to_numpy()
        candidates = ~_baseline(df)
        everything = np.arange(len(df))
        out = []
        for level in sorted(set(labels[candidates])):
            test = np.flatnonzero(candidates & (labels == level))
            out.append((np.setdiff1d(everything, test), test))
        return out if len(out) > 1 else []

    return folds


SPLITS: dict[str, Callable[[pd.DataFrame, str], Folds]] = {
    "r": _ratio,
    "D": _largest_d,
    "kfold": _kfold,
}
"""Split kinds with their own rule; any other name is a column left out one level at a time."""


def folds(df: pd.DataFrame, split: str) -> Folds:
    """The (train, test) folds of ``split`` on ``df`` (positional indices). Baselines (r = 0)
    are in every train set and no test set; a split that cannot apply (one level, one D, no r
    above the threshold) gives no folds."""
    kind, _, arg = split.partition(":")
    rule = SPLITS.get(kind)
    if rule is None:
        if arg:
            raise LawError(
                f"unknown held-out split {split!r}; use r:X, D, kfold:K or a column name "
                "(dataset, model, method)"
            )
        rule = _level(kind)
    found = rule(df, arg)
    base = np.flatnonzero(_baseline(df))
    out = []
    for train, test in found:
        train = np.union1d(train, base)
        test = np.setdiff1d(test, base)
        if len(test):
            out.append((train, test))
    return out


@dataclass(frozen=True)
class HeldOutSummary:
    """The held-out error of one fit on one split (None where undefined): ``n`` test rows,
    ``mape_pct``, ``degradation_mape_pct`` (of L - L0), ``coverage`` (of the prediction
    interval); for accuracy also ``abs_error_points`` (100 mean |L_hat - L|) and
    ``noise_floor_points`` (100 sqrt(2/pi) mean L_se: None without L_se on every test row);
    for another metric whose table has ``L_se``, ``noise_floor_pct`` (100 sqrt(2/pi)
    mean(L_se / L), to set beside ``mape_pct``)."""

    split: str
    n: int
    mape_pct: float | None = None
    degradation_mape_pct: float | None = None
    coverage: float | None = None
    abs_error_points: float | None = None
    noise_floor_points: float | None = None
    noise_floor_pct: float | None = None
    reported: tuple[str, ...] = ()
    """Which of the last three the metric reports (`to_dict` gives them even when None)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``split``, ``n``, the three errors and the ``reported`` ones
        (``heldout`` in the schema of ``complaw fit --json``, docs/laws.md)."""
        keys = ("split", "n", "mape_pct", "degradation_mape_pct", "coverage", *self.reported)
        return {k: getattr(self, k) for k in keys}


@dataclass
class HeldOut:
    """The held-out error of one form on one group for one split."""

    split: str
    form: str
    metric: str = ""
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    """One row per predicted test row: its index among the group's rows of the metric,
    dataset, L, L0, r, D, L_se (when the table has it), L_hat, pi_low, pi_high, fold."""
    unfitted: int = 0
    """Test rows whose fold could not be fitted (too few rows, not identifiable)."""
    reasons: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.predictions)

    def summary(self) -> HeldOutSummary:
        """The errors of the predictions (`HeldOutSummary`)."""
        noise = self._noise()
        return HeldOutSummary(self.split, int(len(self.predictions)), **self._errors(),
                              **noise, reported=tuple(noise))

    def _noise(self) -> dict[str, float | None]:
        p = self.predictions
        se = p["L_se"].to_numpy(float) if "L_se" in p.columns else None
        known = se is not None and len(se) > 0 and bool(np.isfinite(se).all())
        floor = 100.0 * math.sqrt(2.0 / math.pi)
        if self.metric == "accuracy":
            return {
                "abs_error_points": 100.0 * float(np.mean(np.abs(p["L_hat"] - p["L"])))
                if len(p) else None,
                "noise_floor_points": floor * float(np.mean(se)) if known else None,
            }
        if se is None:
            return {}
        return {"noise_floor_pct": floor * float(np.mean(se / p["L"])) if known else None}

    def _errors(self) -> dict[str, float | None]:
        p = self.predictions
        if p.empty:
            return {"mape_pct": None, "degradation_mape_pct": None, "coverage": None}
        L, L0, hat = (p[c].to_numpy(float) for c in ("L", "L0", "L_hat"))
        moved = L != L0
        deg = (100.0 * float(np.mean(np.abs((hat - L0)[moved] - (L - L0)[moved])
                                     / np.abs((L - L0)[moved])))
               if moved.any() else None)
        inside = p[["pi_low", "pi_high"]].notna().all(axis=1)
        coverage = (float(np.mean((p["pi_low"][inside] <= p["L"][inside])
                                  & (p["L"][inside] <= p["pi_high"][inside])))
                    if inside.all() else None)
        return {
            "mape_pct": 100.0 * float(np.mean(np.abs(hat - L) / L)),
            "degradation_mape_pct": deg,
            "coverage": coverage,
        }


def heldout_error(
    df: pd.DataFrame,
    form: str | Form,
    split: str,
    *,
    intercept: bool | None = None,
    level: float = 0.95,
) -> HeldOut:
    """Fit ``form`` on each fold's train rows of one group (one metric, plus its companion
    metric's rows for a form with one) and predict its test rows, with the ``level``
    prediction interval. Companion rows at a test row's condition are left out of the fit."""
    form = get_form(form)
    own, companion = form.split_rows(validate(df))
    own = own.reset_index(drop=True)
    out = HeldOut(split, form.name, metric=str(own["metric"].iloc[0]) if len(own) else "")
    kept = [c for c in ("dataset", *NUMERIC_COLUMNS, "L_se") if c in own.columns]
    frames = []
    for i, (train, test) in enumerate(folds(own, split)):
        if np.intersect1d(train, test).size:  # a fold rule must never do this
            raise AssertionError(f"split {split}: fold {i} tests rows it was fitted on")
        rows = own.iloc[test]
        seen = companion[~_at(companion, rows)]
        try:
            fitted = fit_group(pd.concat([own.iloc[train], seen]), form, intercept=intercept,
                               level=level)
        except LawError as exc:
            out.unfitted += len(test)
            out.reasons.append(str(exc))
            continue
        pred = fitted.law().predict(**inputs_of(rows), level=level)
        frames.append(pd.DataFrame({
            "index": test, **{c: rows[c].to_numpy() for c in kept},
            "L_hat": pred.L, "pi_low": pred.pi_low, "pi_high": pred.pi_high, "fold": i,
        }))
    if frames:
        out.predictions = pd.concat(frames, ignore_index=True)
    return out


CONDITION: tuple[str, ...] = ("model", "method", "calibration", "dataset", "r", "D")
"""The columns that say where a row was measured (any metric)."""


def _at(df: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Which rows of ``df`` were measured at the condition of one of ``rows``."""
    where = list(CONDITION)
    return pd.MultiIndex.from_frame(df[where]).isin(pd.MultiIndex.from_frame(rows[where]))


def noise_floor(df: pd.DataFrame, seed_column: str = "seed") -> dict[str, Any] | None:
    """The MAPE (%) of one seed's L against the mean of the other seeds on the same cell (same
    model, method, calibration, dataset, metric, r, D): the error no law can be expected to
    beat. None when the table has fewer than two seeds."""
    if seed_column not in df.columns or df[seed_column].nunique() < 2:
        return None
    keys = [c for c in COLUMNS if c != "L"]
    errors = []
    for _, cell in df.groupby(keys, sort=False, dropna=False):
        if cell[seed_column].nunique() < 2:
            continue
        L = cell["L"].to_numpy(float)
        others = (L.sum() - L) / (len(L) - 1)
        errors.append(np.abs(L - others) / others)
    if not errors:
        return None
    e = np.concatenate(errors)
    return {"seeds": int(df[seed_column].nunique()), "n": int(len(e)),
            "mape_pct": 100.0 * float(e.mean())}
