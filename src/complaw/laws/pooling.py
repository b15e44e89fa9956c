"""Partial pooling: one form fitted across groups (models, datasets), some coefficients shared
by every group, the others per group and shrunk towards their mean by a strength estimated
from the data (random effects, empirical Bayes).

Model. Row i of group g (a cell of the pooling columns, e.g. one model), on the form's scale z
(log L for most forms)::

    z_i = f(theta_s, u_g; L0_i, r_i, D_i) + e_i,   e_i ~ N(0, s²)
    u_g ~ N(mu + beta (c_g - c̄), diag(tau²))

with theta_s the shared coefficients and u_g the group's own, both in the fit's internal
coordinates: the log of a coefficient whose lower bound is > 0 (an amplitude varies by a
factor), the coefficient itself otherwise. A *trend* (``Pooling.trend``) lets the mean of
some per-group coefficients move with the group's size c_g = log10 N0 (`SIZE`, the base
model's non-embedding parameters; c̄ their mean over the groups): beta is zero for the
others, and for all of them without a trend. It is how a law transfers to a model of
another size: the population law of a group not in the fit is taken at its own c.

Estimation (EM with a Laplace approximation; `fit_pooled`):

1. start from complete pooling (one law for every row, `fit_group`): u_g = mu = its values;
2. given s and tau, the posterior mode of (theta_s, mu, beta, u_g) is the least-squares
   solution of the stacked residuals
   [sqrt(w_i) (zhat_i - z_i) / s ; (u_gj - mu_j - beta_j (c_g - c̄)) / tau_j] (scipy's
   ``least_squares``), w_i the IRLS weights of the form's robust loss (``soft_l1`` for the
   curve forms, none for the linear ones), recomputed every round;
3. C = (J'J)⁻¹ of those residuals at the mode is the posterior covariance; then
   s² = sum w_i e_i² / (n - edf), edf = tr(J_d C J_d') (J_d: J's data rows), and
   tau_j² = mean_g [d_gj² + Var(d_gj)], d_g = u_g - mu - beta (c_g - c̄), with Var from C
   (mu's and beta's uncertainty included); back to 2 until s and tau move less than `TOL`
   relative.

For a linear form without robust weights the fixed point is the REML estimate of s² and tau²
(the EM of Laird, Lange & Stram 1987) and the modes are the BLUPs; the tests check it against
statsmodels' MixedLM. A group's u_g is a precision-weighted mean of what its own rows say and
mu: as its rows vanish it goes to mu, as they grow to its unpooled fit. A group absent from
the fit (a held-out model) gets the *population law*: theta_s and mu + beta (c - c̄), with
the covariance of that map of C plus tau² on the per-group coefficients (a new group's
predictive distribution); its intervals carry the spread between groups.

A new group with a few rows of its own (`PooledFit.update`, a prior from another study) takes
that population law as a normal prior on its internal coefficients, N(m, P), and the rows with
the fit's noise s: its law is the posterior mode of
||(zhat - z) / s||² + (u - m)' P⁻¹ (u - m) (scipy's ``least_squares``) with the Laplace
covariance (J'J)⁻¹ of those residuals. The fitted groups, the shared coefficients and tau stay
as the fit left them: a group's few rows move only its own law.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
from complaw.laws.table import SIZE, check_enough_rows, validate

TOL = 1e-6
"""EM stops when s and every tau move less than this, relative."""
MAX_ROUNDS = 300
TAU_FLOOR = 1e-4
"""The smallest tau (internal units): below it a coefficient is in effect shared."""
MIN_TREND_GROUPS = 3
"""A trend needs this many groups: through two, the line leaves no spread to estimate."""


@dataclass(frozen=True)
class Pooling:
    """How a form is pooled: the columns whose cells are the groups, the shared coefficients
    (the others vary per group), and the per-group ones whose mean follows the groups' size
    (``trend``, module docstring)."""

    by: tuple[str, ...]
    share: tuple[str, ...]
    trend: tuple[str, ...] = ()

    @classmethod
    def of(cls, form: Form, by: Sequence[str], share: Sequence[str] | bool,
           intercept: bool | None = None, trend: Sequence[str] = ()) -> Pooling:
        """The pooling of ``form`` across the cells of ``by``, sharing ``share`` (True: the
        form's declared `Form.share`), the mean of ``trend`` linear in log10 of the size. A
        LawError names a coefficient the form lacks, or a trend on a shared one."""
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
        unknown = [c for c in trend if c not in names]
        if unknown:
            raise LawError(f"--trend {','.join(trend)}: form {form.name} has no coefficient "
                           f"{', '.join(unknown)}; its coefficients are {', '.join(names)}")
        both = [c for c in trend if c in chosen]
        if both:
            raise LawError(f"--trend {','.join(trend)}: {', '.join(both)} is shared, so it has "
                           "no per-group mean to move with size; drop it from --share or "
                           "--trend")
        return cls(by, tuple(c for c in names if c in chosen),
                   tuple(c for c in names if c in trend))


def _coefs(form: Form, names: list[str]) -> list[Coef]:
    declared = {c.name: c for c in form.coefs}
    return [declared.get(n, Coef(n, n)) for n in names]


@dataclass
class PooledFit:
    """A pooled fit (`fit_pooled`): the shared and per-group coefficients, their posterior
    covariance, s and tau. ``law(key)`` is a group's law, ``law(None, size)`` the population's
    (at a size, for a fit with a trend). ``x`` is laid out as the shared coefficients, mu,
    beta (one per trend coefficient), then each group's per-group coefficients; ``center``
    is the mean log10 size of the fitted groups (0 without a trend)."""

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
    center: float = 0.0
    unsettled: dict[str, float] = field(default_factory=dict)
    """The relative change in the EM's last round of s ("s") and of each per-group
    coefficient's tau, when the EM stopped at `MAX_ROUNDS` before they all moved less than
    `TOL`; empty when it converged. A tau falling slowly towards 0 (the data support no
    spread) is the usual case; its predictions have settled long before."""

    @property
    def shared(self) -> list[int]:
        return [j for j, n in enumerate(self.names) if n in self.pooling.share]

    @property
    def varying(self) -> list[int]:
        return [j for j, n in enumerate(self.names) if n not in self.pooling.share]

    def _map(self, group: int | None, size: float | None = None) -> np.ndarray:
        """T with T @ x the internal coefficients (`names` order) of a fitted group, or (None)
        the population's mean at ``size`` (N0; needed with a trend)."""
        n_s, n_r, trend = len(self.shared), len(self.varying), self.pooling.trend
        T = np.zeros((len(self.names), len(self.x)))
        T[self.shared, np.arange(n_s)] = 1.0
        if group is not None:
            T[self.varying, n_s + n_r + len(trend) + n_r * group + np.arange(n_r)] = 1.0
            return T
        T[self.varying, n_s + np.arange(n_r)] = 1.0
        if trend:
            if size is None or not np.isfinite(size) or size <= 0:
                raise LawError(f"the pooled law's {', '.join(trend)} follow model size: a model "
                               f"outside the fit needs its {SIZE} (non-embedding parameters); "
                               "give rows that carry it (law tables built from records do)")
            at = [j for j in self.varying if self.names[j] in trend]
            T[at, n_s + n_r + np.arange(len(trend))] = np.log10(size) - self.center
        return T

    def coefficients(self, key: tuple | None = None,
                     size: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A group's coefficients (natural scale, `names` order) and their covariance; for a
        key not fitted (or None), the population's at ``size``, with tau² added to the
        per-group ones."""
        group = self.keys.index(key) if key in self.keys else None
        T = self._map(group, size)
        u, C = T @ self.x, T @ self.C @ T.T
        if group is None:
            C[self.varying, self.varying] += self.tau**2
        theta = np.where(self.logs, np.exp(u), u)
        scale = np.where(self.logs, theta, 1.0)
        return theta, C * np.outer(scale, scale)

    def law(self, key: tuple | None = None, size: float | None = None) -> Law:
        theta, cov = self.coefficients(key, size)
        label = ("population" if key not in self.keys else
                 " ".join(f"{c}={v}" for c, v in zip(self.pooling.by, key, strict=True)))
        return Law(name=f"pooled:{self.form.name}:{self.metric}:{label}", form=self.form.name,
                   metric=self.metric, coefficients=dict(zip(self.names, theta, strict=True)),
                   source=f"pooled fit of {self.n} rows by {','.join(self.pooling.by)}",
                   cov=cov, df_resid=self.n - self.edf, resid_std=self.s)

    def update(self, rows: pd.DataFrame, label: str = "new", size: float | None = None) -> Law:
        """The law of a group not in the fit from its own ``rows`` (none: the population
        law): the population law (at ``size``, or the rows' `SIZE`) as a normal prior on the
        internal coefficients, updated by the rows (module docstring). Intervals on
        ``n - edf`` of the fit, noise ``s``."""
        from scipy.optimize import least_squares

        T = self._map(None, size_of(rows) if size is None else size)
        mean, prior = T @ self.x, T @ self.C @ T.T
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
        return self.law(keys.pop(), size_of(rows))

    def predict(self, rows: pd.DataFrame, level: float) -> Prediction:
        """Each row predicted by its group's law (the population's for a group not fitted)."""
        keys = self.key_of(rows)
        out = {k: np.full(len(rows), np.nan) for k in ("L", "low", "high", "pi_low", "pi_high")}
        for key in dict.fromkeys(keys):
            mask = np.array([k == key for k in keys])
            part = rows[mask]
            pred = self.law(key, size_of(part)).predict(**inputs_of(part), level=level)
            for name, values in out.items():
                values[mask] = getattr(pred, name)
        return Prediction(level=level, **out)

    def summary(self) -> dict[str, Any]:
        """What ``fit --json`` reports under ``pooling``."""
        mu, _ = self.coefficients(None, 10.0**self.center)
        n_s, n_r = len(self.shared), len(self.varying)
        slopes = self.x[n_s + n_r:n_s + n_r + len(self.pooling.trend)]
        return {"by": list(self.pooling.by), "share": list(self.pooling.share),
                "groups": len(self.keys),
                "mean": {self.names[j]: float(mu[j]) for j in self.varying},
                "trend": {name: float(b) for name, b in zip(self.pooling.trend, slopes,
                                                            strict=True)},
                "trend_center": {SIZE: float(10.0**self.center)} if self.pooling.trend else {},
                "tau": {self.names[j]: float(t) for j, t in zip(self.varying, self.tau,
                                                                strict=True)},
                "tau_scale": {self.names[j]: "log" if self.logs[j] else "identity"
                              for j in self.varying},
                "resid_std": self.s, "edf": self.edf, "rounds": self.rounds,
                "unsettled": dict(self.unsettled)}


def fit_pooled(df: pd.DataFrame, form: str | Form, pooling: Pooling, *,
               intercept: bool | None = None, level: float = 0.95,
               tau: Sequence[float] | None = None) -> PooledFit:
    """Pool ``form`` over the groups of ``pooling`` on the rows of one metric (module
    docstring). ``tau`` fixes the spread of each per-group coefficient (internal units, in
    coefficient order) instead of estimating it. A trend reads each group's `SIZE` column."""
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
    c = _group_sizes(df, pooling, codes, G)
    center = float(c.mean()) if pooling.trend else 0.0
    c = c - center
    E = np.array([[float(names[j] == t) for t in pooling.trend] for j in varying]).reshape(
        n_r, len(pooling.trend))  # which per-group coefficient each slope moves
    n_b = E.shape[1]

    def layout(v: np.ndarray, slope: float) -> np.ndarray:
        """A per-coefficient vector laid out as x: shared, mu, beta, then each group's."""
        return np.concatenate([v[shared], v[varying], np.full(n_b, slope),
                               np.tile(v[varying], G)])

    x, xpad = layout(u0, 0.0), layout(pad, 0.0)
    xlo, xhi = layout(ilo, -np.inf), layout(ihi, np.inf)
    data = inputs_of(df)
    z = form.scale.to_scale(df["L"].to_numpy(float))
    rho_weight = ROBUST[getattr(form, "loss", "linear")][1]
    f_scale = float(getattr(form, "f_scale", 1.0))

    def errors(x: np.ndarray) -> np.ndarray:
        U = np.empty((n, len(names)))
        U[:, shared] = x[:n_s]
        U[:, varying] = x[n_s + n_r + n_b:].reshape(G, n_r)[codes]
        theta = np.where(logs, np.exp(U), U)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            zhat = form.scale.to_scale(form.predict(
                {name: theta[:, j] for j, name in enumerate(names)}, data))
        return np.where(np.isfinite(zhat), zhat - z, 1e3)

    M = _spread_map(n_s, n_r, E, c)

    def stacked(x: np.ndarray, w: np.ndarray, s: float, t: np.ndarray) -> np.ndarray:
        return np.concatenate([np.sqrt(w) * errors(x) / s, ((M @ x).reshape(G, n_r) / t).ravel()])

    s = float(start.resid_std) if np.isfinite(start.resid_std) and start.resid_std > 0 else 0.1
    fixed = tau is not None
    t = (np.asarray(tau, float) if fixed else np.where(logs[varying], 1.0,
                                                        np.maximum(np.abs(u0[varying]), 0.1)))
    t = np.maximum(t, TAU_FLOOR)
    C = np.zeros((len(x), len(x)))
    edf = float(len(names))
    rounds, moved = 0, {}
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
        t_new = t if fixed else _tau(x, C, M, G)
        moved = dict(zip(["s", *(names[j] for j in varying)],
                         (np.append(s_new / s, t_new / t) - 1.0).tolist(), strict=True))
        s, t = max(s_new, 1e-12), t_new
        if max(abs(m) for m in moved.values()) < TOL:
            moved = {}
            break
    return PooledFit(form, str(metrics[0]), pooling, names, logs, keys, x, C, s, t, n, edf,
                     rounds, center, moved)


def size_of(rows: pd.DataFrame) -> float | None:
    """The one `SIZE` of ``rows`` (a group's rows), None where they do not carry it."""
    if SIZE not in rows.columns or rows.empty:
        return None
    sizes = pd.to_numeric(rows[SIZE], errors="coerce").unique()
    return float(sizes[0]) if len(sizes) == 1 else None


def _group_sizes(df: pd.DataFrame, pooling: Pooling, codes: np.ndarray, G: int) -> np.ndarray:
    """Each group's log10 `SIZE` (zeros without a trend); a LawError where a trend lacks it."""
    if not pooling.trend:
        return np.zeros(G)
    trend = ",".join(pooling.trend)
    if G < MIN_TREND_GROUPS:
        raise LawError(f"--trend {trend} across {G} groups: a size trend needs "
                       f"{MIN_TREND_GROUPS} or more to leave a spread to estimate; pool more "
                       "models or drop --trend")
    sizes = (pd.to_numeric(df[SIZE], errors="coerce").to_numpy(float) if SIZE in df.columns
             else np.full(len(df), np.nan))
    out = np.empty(G)
    for g in range(G):
        own = np.unique(sizes[codes == g])
        if len(own) != 1 or not np.isfinite(own[0]) or own[0] <= 0:
            raise LawError(f"--trend {trend} needs each group's model size (column {SIZE}, the "
                           "base model's non-embedding parameters), one positive value per "
                           f"group; found {', '.join(map(str, own))}; build the law table "
                           "from the study's records, or add the column")
        out[g] = np.log10(own[0])
    return out


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


def _spread_map(n_s: int, n_r: int, E: np.ndarray, c: np.ndarray) -> np.ndarray:
    """M with (M @ x).reshape(G, n_r) the groups' d_g = u_g - mu - E beta c_g (x laid out as
    `fit_pooled` lays it: shared, mu, beta, then each group's)."""
    G, n_b = len(c), E.shape[1]
    M = np.zeros((G * n_r, n_s + n_r + n_b + G * n_r))
    for g in range(G):
        rows = slice(g * n_r, (g + 1) * n_r)
        M[rows, n_s:n_s + n_r] = -np.eye(n_r)
        M[rows, n_s + n_r:n_s + n_r + n_b] = -E * c[g]
        M[rows, n_s + n_r + n_b + g * n_r:n_s + n_r + n_b + (g + 1) * n_r] = np.eye(n_r)
    return M


def _tau(x: np.ndarray, C: np.ndarray, M: np.ndarray, G: int) -> np.ndarray:
    """The EM update of tau: sqrt(mean_g[d_g² + Var(d_g)]) per coefficient, d = M x
    (`_spread_map`) and Var(d) = diag(M C M')."""
    var = np.maximum(np.einsum("ij,jk,ik->i", M, C, M), 0.0)
    total = ((M @ x) ** 2 + var).reshape(G, -1).sum(axis=0)
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
        heldout = {split: h.of_rows(np.flatnonzero(mask)).summary()
                   for split, h in held.items()}
        out.append(FitResult(
            form=form.name, intercept=CONST in fitted.names, metric=fitted.metric,
            group={**group, **dict(zip(fitted.pooling.by, key, strict=True))},
            coefficients=_coefficients(fitted.names, theta, cov, dof, level,
                                       on_bound(theta, lo, hi)),
            cov=cov, draws=None, bootstrap=None, heldout=MappingProxyType(heldout),
            pooling=fitted.summary(), **stats))
    return out
