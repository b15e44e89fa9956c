"""Partial pooling: one form fitted across groups (models, datasets), some coefficients shared
by every group, the others per group and shrunk towards their mean by a strength estimated
from the data (random effects, empirical Bayes).

Model. Row i of group g (a cell of the pooling columns, e.g. one model), on the form's scale z
(log L for most forms)::

    z_i = f(theta_s, u_g; L0_i, r_i, D_i) + e_i,   e_i ~ N(0, s²)
    u_g ~ N(mu, diag(tau²))

with theta_s the shared coefficients and u_g the group's own, both in the fit's internal
coordinates: the log of a coefficient whose lower bound is > 0 (an amplitude varies by a
factor), the coefficient itself otherwise.

Estimation (EM with a Laplace approximation; `fit_pooled`):

1. start from complete pooling (one law for every row, `fit_group`): u_g = mu = its values;
2. given s and tau, the posterior mode of (theta_s, mu, u_g) is the least-squares solution of
   the stacked residuals [sqrt(w_i) (zhat_i - z_i) / s ; (u_gj - mu_j) / tau_j] (scipy's
   ``least_squares``), w_i the IRLS weights of the form's robust loss (``soft_l1`` for the
   curve forms, none for the linear ones), recomputed every round;
3. C = (J'J)⁻¹ of those residuals at the mode is the posterior covariance; then
   s² = sum w_i e_i² / (n - edf), edf = tr(J_d C J_d') (J_d: J's data rows), and
   tau_j² = mean_g [(u_gj - mu_j)² + Var(u_gj - mu_j)] with Var from C (mu's uncertainty
   included); back to 2 until s and tau move less than `TOL` relative.

For a linear form without robust weights the fixed point is the REML estimate of s² and tau²
(the EM of Laird, Lange & Stram 1987) and the modes are the BLUPs; the tests check it against
statsmodels' MixedLM. A group's u_g is a precision-weighted mean of what its own rows say and
mu: as its rows vanish it goes to mu, as they grow to its unpooled fit. A group absent from
the fit (a held-out model) gets the *population law*: theta_s and mu, with covariance
C[theta_s, mu] plus tau² on the per-group coefficients (a new group's predictive
distribution); its intervals carry the spread between groups.

A new group with a few rows of its own (`PooledFit.update`, a prior from another study) takes
that population law as a normal prior on its internal coefficients, N(m, P), and the rows with
the fit's noise s: its law is the posterior mode of
||(zhat - z) / s||² + (u - m)' P⁻¹ (u - m) (scipy's ``least_squares``) with the Laplace
covariance (J'J)⁻¹ of those residuals. The fitted groups, the shared coefficients and tau stay
as the fit left them: a group's few rows move only its own law.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import (
    ROBUST,
    FitResult,
    _coefficients,
    _statistics,
    fit_group,
    inputs_of,
    on_bound,
)
from complaw.laws.forms import CONST, Coef, CurveForm, Form, LinearForm, get_form
from complaw.laws.holdout import heldout_error
from complaw.laws.law import Law, Prediction
from complaw.laws.table import check_enough_rows, validate

TOL = 1e-6
"""EM stops when s and every tau move less than this, relative."""
MAX_ROUNDS = 300
TAU_FLOOR = 1e-4
"""The smallest tau (internal units): below it a coefficient is in effect shared."""


@dataclass(frozen=True)
class Pooling:
    """How a form is pooled: the columns whose cells are the groups, the shared coefficients
    (the others vary per group)."""

    by: tuple[str, ...]
    share: tuple[str, ...]

    @classmethod
    def of(cls, form: Form, by: Sequence[str], share: Sequence[str] | bool,
           intercept: bool | None = None) -> Pooling:
        """The pooling of ``form`` across the cells of ``by``, sharing ``share`` (True: the
        form's declared `Form.share`). A LawError names a coefficient the form lacks."""
        if not isinstance(form, LinearForm | CurveForm):
            raise LawError(f"form {form.name} is fitted in steps and cannot be pooled; pool "
                           "the loss form of its first step instead")
        by = tuple(c for c in dict.fromkeys(by) if c != "metric")
        if not by:
            raise LawError("pooling needs groups to pool: add --by (e.g. --by model)")
        names = form.coef_names(intercept)
        chosen = tuple(form.share if share is True else share)
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise LawError(f"--share {','.join(chosen)}: form {form.name} has no coefficient "
                           f"{', '.join(unknown)}; its coefficients are {', '.join(names)}")
        return cls(by, tuple(c for c in names if c in chosen))


def _coefs(form: Form, names: list[str]) -> list[Coef]:
    declared = {c.name: c for c in form.coefs}
    return [declared.get(n, Coef(n, n)) for n in names]


@dataclass
class PooledFit:
    """A pooled fit (`fit_pooled`): the shared and per-group coefficients, their posterior
    covariance, s and tau. ``law(key)`` is a group's law, ``law(None)`` the population's."""

    form: Form
    metric: str
    pooling: Pooling
    names: list[str]
    logs: np.ndarray
    keys: list[tuple]
    x: np.ndarray
    C: np.ndarray
    s: float
    tau: np.ndarray
    n: int
    edf: float
    rounds: int

    @property
    def shared(self) -> list[int]:
        return [j for j, n in enumerate(self.names) if n in self.pooling.share]

    @property
    def varying(self) -> list[int]:
        return [j for j, n in enumerate(self.names) if n not in self.pooling.share]

    def _positions(self, group: int | None) -> np.ndarray:
        """Positions in x of the coefficients (in `names` order) of a group (None: mu)."""
        n_s, n_r = len(self.shared), len(self.varying)
        out = np.empty(len(self.names), dtype=int)
        out[self.shared] = np.arange(n_s)
        start = n_s if group is None else n_s + n_r * (group + 1)
        out[self.varying] = start + np.arange(n_r)
        return out

    def coefficients(self, key: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A group's coefficients (natural scale, `names` order) and their covariance; for a
        key not fitted (or None), the population's, with tau² added to the per-group ones."""
        group = self.keys.index(key) if key in self.keys else None
        at = self._positions(group)
        u, C = self.x[at], self.C[np.ix_(at, at)].copy()
        if group is None:
            C[self.varying, self.varying] += self.tau**2
        theta = np.where(self.logs, np.exp(u), u)
        scale = np.where(self.logs, theta, 1.0)
        return theta, C * np.outer(scale, scale)

    def law(self, key: tuple | None = None) -> Law:
        theta, cov = self.coefficients(key)
        label = ("population" if key not in self.keys else
                 " ".join(f"{c}={v}" for c, v in zip(self.pooling.by, key, strict=True)))
        return Law(name=f"pooled:{self.form.name}:{self.metric}:{label}", form=self.form.name,
                   metric=self.metric, coefficients=dict(zip(self.names, theta, strict=True)),
                   source=f"pooled fit of {self.n} rows by {','.join(self.pooling.by)}",
                   cov=cov, df_resid=self.n - self.edf, resid_std=self.s)

    def update(self, rows: pd.DataFrame, label: str = "new") -> Law:
        """The law of a group not in the fit from its own ``rows`` (none: the population
        law): the population law as a normal prior on the internal coefficients, updated by
        the rows (module docstring). Intervals on ``n - edf`` of the fit, noise ``s``."""
        from scipy.optimize import least_squares

        at = self._positions(None)
        mean = self.x[at]
        prior = self.C[np.ix_(at, at)].copy()
        prior[self.varying, self.varying] += self.tau**2
        values, vectors = np.linalg.eigh(prior)
        whiten = vectors.T / np.sqrt(np.maximum(values, 1e-300))[:, None]
        logs, lo, hi = _internal_bounds(self.form, self.names)
        z = self.form.scale.to_scale(rows["L"].to_numpy(float))
        data = inputs_of(rows)

        def stacked(u: np.ndarray) -> np.ndarray:
            theta = np.where(logs, np.exp(u), u)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                zhat = self.form.scale.to_scale(self.form.predict(
                    dict(zip(self.names, theta, strict=True)), data))
            misfit = np.where(np.isfinite(zhat), zhat - z, 1e3) / self.s
            return np.concatenate([misfit, whiten @ (u - mean)])

        pad = np.where(np.isfinite(hi - lo), 1e-9 * (hi - lo), 0.0)
        with np.errstate(over="ignore", invalid="ignore"):  # trial steps far off the prior
            u = least_squares(stacked, np.clip(mean, lo + pad, hi - pad), bounds=(lo, hi),
                              x_scale="jac", method="trf").x
        J = _jacobian(stacked, u, ())
        theta = np.where(logs, np.exp(u), u)
        scale = np.where(logs, theta, 1.0)
        cov = np.linalg.pinv(J.T @ J) * np.outer(scale, scale)
        return Law(name=f"prior:{self.form.name}:{self.metric}:{label}", form=self.form.name,
                   metric=self.metric, coefficients=dict(zip(self.names, theta, strict=True)),
                   source=f"pooled fit of {self.n} rows by {','.join(self.pooling.by)} "
                          f"updated by {len(rows)} rows of {label}",
                   cov=cov, df_resid=self.n - self.edf, resid_std=self.s)

    def key_of(self, rows: pd.DataFrame) -> list[tuple]:
        return list(zip(*(rows[c].tolist() for c in self.pooling.by), strict=True))

    def law_of(self, rows: pd.DataFrame) -> Law:
        """The law of the (one) group of ``rows``."""
        keys = set(self.key_of(rows))
        if len(keys) != 1:
            raise LawError(f"rows of {len(keys)} groups; one group's law predicts one group")
        return self.law(keys.pop())

    def predict(self, rows: pd.DataFrame, level: float) -> Prediction:
        """Each row predicted by its group's law (the population's for a group not fitted)."""
        keys = self.key_of(rows)
        out = {k: np.full(len(rows), np.nan) for k in ("L", "low", "high", "pi_low", "pi_high")}
        for key in dict.fromkeys(keys):
            mask = np.array([k == key for k in keys])
            part = rows[mask]
            pred = self.law(key).predict(**inputs_of(part), level=level)
            for name, values in out.items():
                values[mask] = getattr(pred, name)
        return Prediction(level=level, **out)

    def summary(self) -> dict[str, Any]:
        """What ``fit --json`` reports under ``pooling``."""
        mu, _ = self.coefficients(None)
        return {"by": list(self.pooling.by), "share": list(self.pooling.share),
                "groups": len(self.keys),
                "mean": {self.names[j]: float(mu[j]) for j in self.varying},
                "tau": {self.names[j]: float(t) for j, t in zip(self.varying, self.tau,
                                                                strict=True)},
                "tau_scale": {self.names[j]: "log" if self.logs[j] else "identity"
                              for j in self.varying},
                "resid_std": self.s, "edf": self.edf, "rounds": self.rounds}


def fit_pooled(df: pd.DataFrame, form: str | Form, pooling: Pooling, *,
               intercept: bool | None = None, level: float = 0.95,
               tau: Sequence[float] | None = None) -> PooledFit:
    """Pool ``form`` over the groups of ``pooling`` on the rows of one metric (module
    docstring). ``tau`` fixes the spread of each per-group coefficient (internal units, in
    coefficient order) instead of estimating it."""
    from scipy.optimize import least_squares

    form = get_form(form)
    df = validate(df).reset_index(drop=True)
    metrics = df["metric"].unique()
    if len(metrics) != 1:
        raise LawError(f"one pooled fit needs one metric; got {', '.join(map(str, metrics))}")
    names = form.coef_names(intercept)
    missing = [c for c in pooling.by if c not in df.columns]
    if missing:
        raise LawError(f"cannot pool by {', '.join(missing)}: no such column")
    check_enough_rows(len(df), len(names), f"the pooled {form.name} fit")
    start = fit_group(df, form, intercept=intercept, level=level)
    logs, ilo, ihi = _internal_bounds(form, names)
    theta0 = np.array([start.coefficients[n].estimate for n in names])
    u0 = np.where(logs, np.log(np.where(logs, theta0, 1.0)), theta0)
    pad = np.where(np.isfinite(ihi - ilo), 1e-6 * (ihi - ilo), 0.0)
    u0 = np.clip(u0, ilo + pad, ihi - pad)
    shared = [j for j, n in enumerate(names) if n in pooling.share]
    varying = [j for j, n in enumerate(names) if n not in pooling.share]
    keys = list(dict.fromkeys(zip(*(df[c].tolist() for c in pooling.by), strict=True)))
    codes = np.array([keys.index(k) for k in zip(*(df[c].tolist() for c in pooling.by),
                                                    strict=True)])
    G, n_s, n_r, n = len(keys), len(shared), len(varying), len(df)

    def layout(v: np.ndarray) -> np.ndarray:
        """A per-coefficient vector laid out as x: shared, mu, then each group's."""
        return np.concatenate([v[shared], np.tile(v[varying], G + 1)])

    x, xlo, xhi, xpad = layout(u0), layout(ilo), layout(ihi), layout(pad)
    data = inputs_of(df)
    z = form.scale.to_scale(df["L"].to_numpy(float))
    rho_weight = ROBUST[getattr(form, "loss", "linear")][1]
    f_scale = float(getattr(form, "f_scale", 1.0))

    def errors(x: np.ndarray) -> np.ndarray:
        U = np.empty((n, len(names)))
        U[:, shared] = x[:n_s]
        U[:, varying] = x[n_s:].reshape(G + 1, n_r)[1:][codes]
        theta = np.where(logs, np.exp(U), U)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            zhat = form.scale.to_scale(form.predict(
                {name: theta[:, j] for j, name in enumerate(names)}, data))
        return np.where(np.isfinite(zhat), zhat - z, 1e3)

    def stacked(x: np.ndarray, w: np.ndarray, s: float, t: np.ndarray) -> np.ndarray:
        groups = x[n_s:].reshape(G + 1, n_r)
        return np.concatenate([np.sqrt(w) * errors(x) / s,
                               ((groups[1:] - groups[0]) / t).ravel()])

    s = float(start.resid_std) if np.isfinite(start.resid_std) and start.resid_std > 0 else 0.1
    fixed = tau is not None
    t = (np.asarray(tau, float) if fixed else np.where(logs[varying], 1.0,
                                                        np.maximum(np.abs(u0[varying]), 0.1)))
    t = np.maximum(t, TAU_FLOOR)
    C = np.zeros((len(x), len(x)))
    edf = float(len(names))
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        w = rho_weight((errors(x) / f_scale) ** 2)
        x = least_squares(stacked, np.clip(x, xlo + xpad, xhi - xpad),
                          bounds=(xlo, xhi), args=(w, s, t), x_scale="jac", method="trf").x
        J = _jacobian(stacked, x, (w, s, t))
        C = np.linalg.pinv(J.T @ J)
        Jd = J[:n]
        edf = float(np.sum((Jd @ C) * Jd))
        e = errors(x)
        w = rho_weight((e / f_scale) ** 2)
        s_new = float(np.sqrt(np.sum(w * e**2) / max(n - edf, 1.0)))
        t_new = t if fixed else _tau(x, C, n_s, n_r, G)
        moved = max(abs(s_new / s - 1.0), float(np.max(np.abs(t_new / t - 1.0), initial=0.0)))
        s, t = max(s_new, 1e-12), t_new
        if moved < TOL:
            break
    return PooledFit(form, str(metrics[0]), pooling, names, logs, keys, x, C, s, t, n, edf,
                     rounds)


def _internal_bounds(form: Form, names: list[str]) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """Which coefficients are fitted as logs (lower bound > 0), and the bounds of each in
    internal coordinates."""
    coefs = _coefs(form, names)
    lo = np.array([c.bounds[0] for c in coefs], float)
    hi = np.array([c.bounds[1] for c in coefs], float)
    logs = lo > 0
    return (logs, np.where(logs, np.log(np.where(logs, lo, 1.0)), lo),
            np.where(logs, np.log(np.where(logs, hi, 1.0)), hi))


def _jacobian(fun, x: np.ndarray, args: tuple) -> np.ndarray:
    """Central-difference Jacobian of ``fun(x, *args)`` at ``x``."""
    cols = []
    for j in range(len(x)):
        h = 1e-6 * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        cols.append((fun(up, *args) - fun(down, *args)) / (2 * h))
    return np.column_stack(cols)


def _tau(x: np.ndarray, C: np.ndarray, n_s: int, n_r: int, G: int) -> np.ndarray:
    """The EM update of tau: sqrt(mean_g[(u_g - mu)² + Var(u_g - mu)]) per coefficient."""
    groups = x[n_s:].reshape(G + 1, n_r)
    mu_at = n_s + np.arange(n_r)
    total = np.zeros(n_r)
    for g in range(1, G + 1):
        at = n_s + g * n_r + np.arange(n_r)
        var = C[at, at] + C[mu_at, mu_at] - 2.0 * C[at, mu_at]
        total += (groups[g] - groups[0]) ** 2 + np.maximum(var, 0.0)
    return np.maximum(np.sqrt(total / G), TAU_FLOOR)


def results(fitted: PooledFit, df: pd.DataFrame, group: dict[str, Any], *,
            level: float = 0.95, splits: Sequence[str] = (),
            intercept: bool | None = None) -> list[FitResult]:
    """One `FitResult` per group of ``fitted`` (fitted on ``df``, the rows of ``group``'s
    metric), each with the held-out error of ``splits`` on its own rows: the split is applied
    to the whole table, refitted by `fit_pooled` on each fold."""
    form = fitted.form
    df = validate(df).reset_index(drop=True)
    keys = fitted.key_of(df)

    def refit(train: pd.DataFrame) -> PooledFit:
        return fit_pooled(train, form, fitted.pooling, intercept=intercept, level=level)

    held = {split: heldout_error(df, form, split, level=level, fitter=refit)
            for split in splits}
    coefs = _coefs(form, fitted.names)
    lo = np.array([c.bounds[0] for c in coefs], float)
    hi = np.array([c.bounds[1] for c in coefs], float)
    dof = fitted.n - fitted.edf
    out = []
    for key in fitted.keys:
        mask = np.array([k == key for k in keys])
        rows = df[mask]
        theta, cov = fitted.coefficients(key)
        L = rows["L"].to_numpy(float)
        z = form.scale.to_scale(L)
        resid = form.scale.to_scale(fitted.law(key).predict(**inputs_of(rows)).L) - z
        stats = _statistics(form, L, z, resid, len(fitted.names), level)
        stats.update(df_resid=dof, resid_std=fitted.s)
        heldout = {}
        for split, h in held.items():
            index = h.predictions["index"].to_numpy() if h.n else np.array([], int)
            heldout[split] = h.where(np.isin(index, np.flatnonzero(mask))).summary()
        out.append(FitResult(
            form=form.name, intercept=CONST in fitted.names, metric=fitted.metric,
            group={**group, **dict(zip(fitted.pooling.by, key, strict=True))},
            coefficients=_coefficients(fitted.names, theta, cov, dof, level,
                                       on_bound(theta, lo, hi)),
            cov=cov, draws=None, bootstrap=None, heldout=MappingProxyType(heldout),
            pooling=fitted.summary(), **stats))
    return out
