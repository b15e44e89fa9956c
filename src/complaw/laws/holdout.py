"""Held-out error: the statistic a law is judged by.

A *split* says which rows a law is fitted on and which it must predict:

| split | fit on | predict |
|---|---|---|
| ``r:X`` | r <= X | r > X (extrapolation in compression) |
| ``D`` | all but the largest D | the largest D (extrapolation in data) |
| ``dataset``, ``model``, ``method`` (any column) | the other levels | one level, each in turn |
| ``model:K`` (any column) | the other levels and K rows of the left-out one | its other rows |
| ``kfold:K`` | K-1 folds | the K-th, each in turn (seeded) |
| ``usable[:X]`` | usable rows (L <= X L0, default 2) up to their median r | usable rows above it |

Baselines (r = 0) always stay in the fit and are never predicted. Each fold has a *level*
(the column's value, ``r>0.5``, ``D=4096``, ``fold 2``, ...): the summary reports the MAPE of
each (``by_level``). In ``COL:K`` the K rows are the ones the variance-optimal design
(`complaw.laws.voptimal`) would measure first given the law fitted on the other levels (for
a pooled law, its prior for a new group); the MAPE of `RANDOM_DRAWS` seeded random picks of K
rows is reported beside it (``random``). For each split,
`heldout_error` reports the number of test rows, the MAPE of L, the MAPE of the degradation
L - L0, and the coverage of the prediction interval (the share of test rows inside it); the
predictions themselves are kept for figures. For accuracy it adds the mean absolute error in
accuracy points, and, where the rows carry their standard errors ``L_se``, the measurement noise
floor: sqrt(2/pi) sigma is the expected |error| of a normal measurement with s.d. sigma, so a
perfect law's mean absolute error is sqrt(2/pi) mean(L_se) (points, or % of L for other
metrics). `noise_floor` is the error a law cannot be expected to beat from seeds: one seed's L
against the other seeds' mean on the same cells, scaled to one seed's own spread.

Only the form's own metric is predicted. A form with a companion metric (``two-step``: task
loss beside accuracy) is fitted on the companion rows too, except those at a held-out
condition (same model, method, calibration, dataset, r and D as a test row).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import fit_group, inputs_of
from complaw.laws.forms import Form, get_form
from complaw.laws.law import Law, Prediction
from complaw.laws.metrics import get_metric
from complaw.laws.table import COLUMNS, NUMERIC_COLUMNS, validate
from complaw.laws.voptimal import law_batch


class Fold(NamedTuple):
    """One fold: its level's name, the positional rows fitted (``train``) and predicted
    (``test``), and ``give``: how many test rows the fit is handed first (``COL:K``)."""

    level: str
    train: np.ndarray
    test: np.ndarray
    give: int = 0


Folds = list[Fold]
KFOLD_SEED = 0
RANDOM_DRAWS = 5
"""Seeded random picks of K rows reported beside the variance-optimal ones (``COL:K``)."""
USABLE = 2.0
"""The default usable multiple X of ``usable[:X]``: a row with L <= X L0 is usable."""


def _baseline(df: pd.DataFrame) -> np.ndarray:
    return (df["r"].to_numpy(float) == 0.0)


def _ratio(df: pd.DataFrame, arg: str) -> Folds:
    try:
        x = float(arg)
    except ValueError:
        raise LawError(f"split r:{arg}: the threshold must be a number, e.g. r:0.5") from None
    r = df["r"].to_numpy(float)
    test = np.flatnonzero(r > x)
    return [Fold(f"r>{x:g}", np.flatnonzero(r <= x), test)] if len(test) else []


def _largest_d(df: pd.DataFrame, arg: str) -> Folds:
    if arg:
        raise LawError(f"split D:{arg}: D takes no argument (it holds out the largest D)")
    D = df["D"].to_numpy(float)
    candidates = ~_baseline(df)
    if len(np.unique(D[candidates])) < 2:
        return []
    top = D[candidates].max()
    test = np.flatnonzero(candidates & (D == top))
    return [Fold(f"D={top:g}", np.setdiff1d(np.arange(len(df)), test), test)]


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
    return [Fold(f"fold {i + 1}", np.setdiff1d(everything, t), np.sort(t))
            for i, t in enumerate(parts) if len(t)]


def _usable(df: pd.DataFrame, arg: str) -> Folds:
    try:
        x = float(arg) if arg else USABLE
    except ValueError:
        x = math.nan
    if not x > 1.0:
        raise LawError(f"split usable:{arg}: X must be a number > 1 (usable: L <= X L0), "
                       "e.g. usable:2")
    r = df["r"].to_numpy(float)
    usable = np.flatnonzero(~_baseline(df) & (df["L"].to_numpy(float)
                                              <= x * df["L0"].to_numpy(float)))
    if not len(usable):
        return []
    cut = float(np.median(r[usable]))
    test = usable[r[usable] > cut]
    return [Fold(f"usable r>{cut:g}", usable[r[usable] <= cut], test)] if len(test) else []


def _level(column: str) -> Callable[[pd.DataFrame, str], Folds]:
    def folds(df: pd.DataFrame, arg: str) -> Folds:
        if column not in df.columns:
            raise LawError(f"split {column}: the table has no column {column!r}")
        give = _given_rows(column, arg)
        labels = df[column].astype(str).to_numpy()
        candidates = ~_baseline(df)
        everything = np.arange(len(df))
        out = []
        for level in sorted(set(labels[candidates])):
            test = np.flatnonzero(candidates & (labels == level))
            if give >= len(test):
                raise LawError(
                    f"split {column}:{give}: {column} {level} has {len(test)} rows besides its "
                    f"baseline; K must be below that (K rows go to the fit, the rest are "
                    f"predicted), e.g. {column}:{max(len(test) // 4, 1)}")
            out.append(Fold(level, np.setdiff1d(everything, test), test, give))
        return out if len(out) > 1 else []

    return folds


def _given_rows(column: str, arg: str) -> int:
    """K of a ``COL:K`` split (0 for a plain ``COL``)."""
    if not arg:
        return 0
    try:
        k = int(arg)
    except ValueError:
        k = -1
    if k < 1:
        raise LawError(f"split {column}:{arg}: K must be an integer >= 1 (rows of the left-out "
                       f"level handed to the fit), e.g. {column}:2; or write {column}")
    return k


SPLITS: dict[str, Callable[[pd.DataFrame, str], Folds]] = {
    "r": _ratio,
    "D": _largest_d,
    "kfold": _kfold,
    "usable": _usable,
}
"""Split kinds with their own rule; any other name is a column left out one level at a time."""


def labelled_folds(df: pd.DataFrame, split: str) -> Folds:
    """The folds of ``split`` on ``df`` (positional indices), each with its level. Baselines
    (r = 0) are in every train set and no test set; a split that cannot apply (one level, one
    D, no r above the threshold) gives no folds."""
    kind, _, arg = split.partition(":")
    rule = SPLITS.get(kind) or _level(kind)
    base = np.flatnonzero(_baseline(df))
    out = []
    for fold in rule(df, arg):
        test = np.setdiff1d(fold.test, base)
        if len(test):
            out.append(fold._replace(train=np.union1d(fold.train, base), test=test))
    return out


def folds(df: pd.DataFrame, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) pairs of `labelled_folds`."""
    return [(f.train, f.test) for f in labelled_folds(df, split)]


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
    """Which of the noise floors and ``random`` the split reports (`to_dict` gives them even
    when None)."""
    by_level: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """The MAPE (%) of each fold's level (a left-out model, ``r>0.5``, ...)."""
    random: Mapping[str, float] | None = None
    """``COL:K`` splits: ``draws``, ``median_mape_pct``, ``min_mape_pct``, ``max_mape_pct``
    of seeded random picks of K rows, beside the variance-optimal pick's ``mape_pct``."""
    unfitted: int = 0
    """Test rows not predicted because their fold could not be fitted; ``why``: the errors."""
    why: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``split``, ``n``, the three errors, ``by_level``, the ``reported``
        ones, and ``unfitted``, ``why`` where rows were not predicted (``heldout`` in the
        schema of ``complaw fit --json``, docs/laws.md)."""
        keys = ("split", "n", "mape_pct", "degradation_mape_pct", "coverage", *self.reported)
        out = {k: getattr(self, k) for k in keys}
        out["by_level"] = dict(self.by_level)
        if out.get("random") is not None:
            out["random"] = dict(self.random or {})
        if self.unfitted:
            out.update(unfitted=self.unfitted, why=list(self.why))
        return out


@dataclass
class HeldOut:
    """The held-out error of one form on one group for one split."""

    split: str
    form: str
    metric: str = ""
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    """One row per predicted test row: its index among the group's rows of the metric, the
    condition columns (model, method, calibration, dataset) the table has, L, L0, r, D, L_se
    (when the table has it), L_hat, pi_low, pi_high, fold and its level."""
    skipped: dict[int, str] = field(default_factory=dict)
    """The test rows (index, as in ``predictions``) whose fold could not be fitted (too few
    rows, not identifiable), each with the error that said why."""
    random: pd.DataFrame | None = None
    """``COL:K`` splits: per random draw (``draw``) and level, its test rows' ``ape`` (%),
    the test rows' absolute percentage errors with K random rows in the fit."""

    @property
    def n(self) -> int:
        return len(self.predictions)

    @property
    def unfitted(self) -> int:
        return len(self.skipped)

    def of_rows(self, rows: np.ndarray) -> HeldOut:
        """The held-out error on the test rows among ``rows`` (indices, e.g. one group's of
        a pooled fit); random draws are kept for the same levels."""
        mine = set(rows.tolist())
        p = self.predictions[self.predictions["index"].isin(mine)] if self.n else \
            self.predictions
        draws = (None if self.random is None or p.empty
                 else self.random[self.random["level"].isin(set(p["level"]))])
        return HeldOut(self.split, self.form, self.metric, p,
                       {i: w for i, w in self.skipped.items() if i in mine}, draws)

    def summary(self) -> HeldOutSummary:
        """The errors of the predictions (`HeldOutSummary`)."""
        extra = self._noise()
        if self.random is not None:
            extra["random"] = self._random()
        p = self.predictions
        by_level = ({} if p.empty else
                    (100.0 * (p["L_hat"] - p["L"]).abs() / p["L"]).groupby(p["level"]).mean())
        return HeldOutSummary(self.split, int(len(p)), **self._errors(), **extra,
                              reported=tuple(extra), unfitted=self.unfitted,
                              why=tuple(dict.fromkeys(self.skipped.values())),
                              by_level=MappingProxyType({str(k): float(v)
                                                         for k, v in dict(by_level).items()}))

    def _random(self) -> dict[str, float] | None:
        if self.random is None or self.random.empty:
            return None
        mapes = self.random.groupby("draw")["ape"].mean().to_numpy()
        return {"draws": len(mapes), "median_mape_pct": float(np.median(mapes)),
                "min_mape_pct": float(mapes.min()), "max_mape_pct": float(mapes.max())}

    def _noise(self) -> dict[str, float | None]:
        p = self.predictions
        se = p["L_se"].to_numpy(float) if "L_se" in p.columns else None
        known = se is not None and len(se) > 0 and bool(np.isfinite(se).all())
        floor = 100.0 * math.sqrt(2.0 / math.pi)
        if get_metric(self.metric).fraction:
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


class Fitted(Protocol):
    """A law fitted on a fold's train rows, as held-out error uses it."""

    def law_of(self, rows: pd.DataFrame) -> Law:
        """The law that predicts ``rows`` (rows of one level of the split)."""

    def predict(self, rows: pd.DataFrame, level: float) -> Prediction:
        """L and its ``level`` prediction interval at ``rows``."""


Fitter = Callable[[pd.DataFrame], Fitted]
"""Fits the train rows of a fold (`fit_group` for one law; a pooled fit for several)."""


@dataclass
class OneLaw:
    """One law for every row: what `fit_group` gives."""

    law: Law

    def law_of(self, rows: pd.DataFrame) -> Law:
        return self.law

    def predict(self, rows: pd.DataFrame, level: float) -> Prediction:
        return self.law.predict(**inputs_of(rows), level=level)


def variance_optimal(law: Law, rows: pd.DataFrame, k: int) -> list[int]:
    """The positions of the ``k`` of ``rows`` whose measurement shrinks the summed prediction
    variance of ``law`` over ``rows`` the most (`complaw.laws.voptimal.law_batch`, each row its
    own unit): the prior is what the law knows, M = s² cov⁻¹."""
    return law_batch(law, rows, range(len(rows)), k, lambda b: float(len(b)), float(k))


def _given(fold: Fold, fit: Callable[[np.ndarray], Fitted], own: pd.DataFrame) -> Fold:
    """``fold`` with its ``give`` variance-optimal test rows moved to the fit."""
    rows = own.iloc[fold.test]
    chosen = fold.test[variance_optimal(fit(fold.train).law_of(rows), rows, fold.give)]
    return fold._replace(train=np.union1d(fold.train, chosen),
                         test=np.setdiff1d(fold.test, chosen))


def heldout_error(
    df: pd.DataFrame,
    form: str | Form,
    split: str,
    *,
    intercept: bool | None = None,
    level: float = 0.95,
    fitter: Fitter | None = None,
) -> HeldOut:
    """Fit ``form`` on each fold's train rows of one group (one metric, plus its companion
    metric's rows for a form with one) and predict its test rows, with the ``level``
    prediction interval. Companion rows at a test row's condition are left out of the fit.
    ``fitter`` fits a fold (default: `fit_group`, one law; `complaw.laws.pooling` passes a
    pooled fit, whose test rows are predicted by their own group's law)."""
    form = get_form(form)
    own, companion = form.split_rows(validate(df))
    own = own.reset_index(drop=True)
    out = HeldOut(split, form.name, metric=str(own["metric"].iloc[0]) if len(own) else "")
    if fitter is None:
        def fitter(rows: pd.DataFrame) -> Fitted:
            return OneLaw(fit_group(rows, form, intercept=intercept, level=level).law())

    def fit(train: np.ndarray, test: np.ndarray) -> Fitted:
        seen = companion[~_at(companion, own.iloc[test])]
        return fitter(pd.concat([own.iloc[train], seen]))

    kept = [c for c in (*CONDITION[:4], *NUMERIC_COLUMNS, "L_se") if c in own.columns]
    frames, draws = [], []
    rng = np.random.default_rng(KFOLD_SEED)
    for i, fold in enumerate(labelled_folds(own, split)):
        if np.intersect1d(fold.train, fold.test).size:  # a fold rule must never do this
            raise AssertionError(f"split {split}: fold {i} tests rows it was fitted on")
        try:
            if fold.give:
                draws += [_random_draw(fold, fit, own, rng, d) for d in range(RANDOM_DRAWS)]
                fold = _given(fold, lambda train, f=fold: fit(train, f.test), own)
            fitted = fit(fold.train, fold.test)
        except LawError as exc:
            out.skipped.update(dict.fromkeys(fold.test.tolist(), str(exc)))
            continue
        rows = own.iloc[fold.test]
        pred = fitted.predict(rows, level)
        frames.append(pd.DataFrame({
            "index": fold.test, **{c: rows[c].to_numpy() for c in kept},
            "L_hat": pred.L, "pi_low": pred.pi_low, "pi_high": pred.pi_high, "fold": i,
            "level": fold.level,
        }))
    if frames:
        out.predictions = pd.concat(frames, ignore_index=True)
    if draws:
        out.random = pd.concat(draws, ignore_index=True)
    return out


def _random_draw(fold: Fold, fit: Callable[[np.ndarray, np.ndarray], Fitted],
                 own: pd.DataFrame, rng: np.random.Generator, draw: int) -> pd.DataFrame:
    """The absolute percentage errors (%) of ``fold``'s test rows when ``give`` random ones of
    them are handed to the fit."""
    chosen = rng.choice(fold.test, size=fold.give, replace=False)
    test = np.setdiff1d(fold.test, chosen)
    rows = own.iloc[test]
    L = rows["L"].to_numpy(float)
    hat = fit(np.union1d(fold.train, chosen), test).predict(rows, 0.95).L
    return pd.DataFrame({"draw": draw, "level": fold.level, "ape": 100.0 * np.abs(hat - L) / L})


CONDITION: tuple[str, ...] = ("model", "method", "calibration", "dataset", "r", "D")
"""The columns that say where a row was measured (any metric)."""


def _at(df: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Which rows of ``df`` were measured at the condition of one of ``rows``."""
    where = list(CONDITION)
    return pd.MultiIndex.from_frame(df[where]).isin(pd.MultiIndex.from_frame(rows[where]))


def noise_floor(df: pd.DataFrame, seed_column: str = "seed") -> dict[str, Any] | None:
    """The MAPE (%) that a law knowing each cell's true mean L would have on one seed's
    measurements (cells: same model, method, calibration, dataset, metric, r, D): the error no
    law can be expected to beat. Estimated from one seed's L against the mean of the cell's
    n - 1 other seeds, whose difference has n / (n - 1) times one seed's variance, so it is
    scaled by sqrt((n - 1) / n). None when the table has fewer than two seeds."""
    if seed_column not in df.columns or df[seed_column].nunique() < 2:
        return None
    keys = [c for c in COLUMNS if c != "L"]
    errors = []
    for _, cell in df.groupby(keys, sort=False, dropna=False):
        if cell[seed_column].nunique() < 2:
            continue
        L = cell["L"].to_numpy(float)
        n = len(L)
        others = (L.sum() - L) / (n - 1)
        errors.append(np.abs(L - others) / others * np.sqrt((n - 1) / n))
    if not errors:
        return None
    e = np.concatenate(errors)
    return {"seeds": int(df[seed_column].nunique()), "n": int(len(e)),
            "mape_pct": 100.0 * float(e.mean())}
