"""Fitting compression laws: OLS or robust nonlinear least squares, statistics, bootstrap,
held-out error.

`fit(df, form, by=[...])` is the one entry point: it fits one law per group (the metric is
always part of the group) and returns a `Fits` collection of `FitResult`. A `LinearForm` is
fitted by statsmodels OLS; a `CurveForm` by scipy's robust least squares (``soft_l1`` or
``huber``) on log residuals from every starting point the form declares, keeping the best
(as Epoch AI's replication of the Chinchilla fit does). A curve fit's covariance is the
Gauss-Newton one, s² (J'J)^-1 at the optimum; its bootstrap refits resampled rows from the
optimum.

R² conventions. For a regression without a constant column statsmodels reports the
*uncentered* R² (1 - RSS / sum y²); with one (an explicit intercept, or an implicit one such as
log L0 when a group has a single L0) it reports the *centered* R² (1 - RSS / sum (y - ȳ)²).
``r2``, ``adj_r2`` and ``f`` are what statsmodels reports, ``r2_kind`` says which; both R²s
are always given as well, labelled. Adjusted: uncentered 1 - n/(n-k) (1-R²), centered
1 - (n-1)/(n-k) (1-R²), with k coefficients.

AIC/BIC are computed on the scale of L itself (the likelihood on the form's scale plus its
Jacobian, `Scale.log_jacobian`: -sum log L for log L), so forms fitted on log L, on L
(``additive``) and on logit L (``two-step``) can be compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.forms import (
    CONST,
    CurveForm,
    Form,
    LinearForm,
    default_form,
    forms_for,
    get_form,
)
from complaw.laws.law import Law
from complaw.laws.table import check_enough_rows, validate


class NotIdentifiableError(LawError):
    """The design matrix is rank deficient, so some coefficient cannot be estimated."""


@dataclass
class Coefficient:
    """One fitted coefficient with its standard error, t-based CI and optional bootstrap CI."""

    name: str
    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    pvalue: float
    boot_low: float | None = None
    boot_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "estimate": _num(self.estimate),
            "stderr": _num(self.stderr),
            "ci": [_num(self.ci_low), _num(self.ci_high)],
            "pvalue": _num(self.pvalue),
        }
        if self.boot_low is not None:
            out["bootstrap_ci"] = [_num(self.boot_low), _num(self.boot_high)]
        return out


@dataclass
class FitResult:
    """One fitted law and its statistics (see the module docstring for the R² conventions)."""

    form: str
    intercept: bool
    metric: str
    group: dict[str, Any]
    coefficients: dict[str, Coefficient]
    n: int
    df_model: float
    df_resid: float
    r2: float
    adj_r2: float
    r2_kind: str
    r2_centered: float
    adj_r2_centered: float
    r2_uncentered: float
    adj_r2_uncentered: float
    f: float
    f_pvalue: float
    llf: float
    aic: float
    bic: float
    resid_std: float
    cov: np.ndarray
    level: float = 0.95
    draws: np.ndarray | None = None
    bootstrap: dict[str, Any] | None = None
    heldout: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Held-out error by split name (`complaw.laws.holdout.HeldOut.summary`)."""

    @property
    def label(self) -> str:
        """A short name of the group, e.g. ``accuracy model=llama-3-8b``."""
        rest = [f"{k}={v}" for k, v in self.group.items() if k != "metric"]
        return " ".join([self.metric, *rest])

    @property
    def name(self) -> str:
        """The name of the law this fit gives, e.g. ``fit:eq1:accuracy:model=llama-3-8b``."""
        rest = [f"{k}={v}" for k, v in self.group.items() if k != "metric"]
        return ":".join(["fit", self.form, self.metric, *rest])

    @property
    def feasible(self) -> bool:
        """Whether the form gives L = L0 at r = 0 for every D."""
        return get_form(self.form).feasible

    def estimates(self) -> dict[str, float]:
        """Coefficient estimates by name."""
        return {k: c.estimate for k, c in self.coefficients.items()}

    def law(self) -> Law:
        """The fitted `Law`, with covariance and bootstrap draws for uncertainty."""
        return Law(
            name=self.name,
            form=self.form,
            metric=self.metric,
            coefficients=self.estimates(),
            source=f"fit of {self.n} rows ({self.label})",
            stats={"adj_r2": self.adj_r2, "r2_kind": self.r2_kind, "f": self.f, "n": self.n},
            cov=self.cov,
            df_resid=self.df_resid,
            draws=self.draws,
            resid_std=self.resid_std,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the schema of ``complaw fit --json`` (docs/laws.md): ``form``,
        ``group``, ``feasible``, ``n``, ``coefficients`` (name -> value), ``heldout`` (the
        first split, or None), then every statistic."""
        first = next(iter(self.heldout.values()), None)
        return {
            "form": self.form,
            "group": {k: _plain(v) for k, v in self.group.items()},
            "feasible": self.feasible,
            "n": self.n,
            "coefficients": {k: _num(c.estimate) for k, c in self.coefficients.items()},
            "heldout": first,
            "heldout_all": list(self.heldout.values()),
            "name": self.name,
            "metric": self.metric,
            "equation": get_form(self.form).equation,
            "formula": self.law().formula(),
            "intercept": self.intercept,
            "coefficient_stats": {k: c.to_dict() for k, c in self.coefficients.items()},
            "level": self.level,
            "r2": _num(self.r2),
            "adj_r2": _num(self.adj_r2),
            "r2_kind": self.r2_kind,
            "r2_centered": _num(self.r2_centered),
            "adj_r2_centered": _num(self.adj_r2_centered),
            "r2_uncentered": _num(self.r2_uncentered),
            "adj_r2_uncentered": _num(self.adj_r2_uncentered),
            "f": _num(self.f),
            "f_pvalue": _num(self.f_pvalue),
            "df_model": _num(self.df_model),
            "df_resid": _num(self.df_resid),
            "llf": _num(self.llf),
            "aic": _num(self.aic),
            "bic": _num(self.bic),
            "resid_std": _num(self.resid_std),
            "cov": np.asarray(self.cov).tolist(),
            "bootstrap": self.bootstrap,
        }


class Fits(Sequence[FitResult]):
    """The fits of one form over the groups of a table, in group order."""

    def __init__(self, form: str, by: list[str], results: list[FitResult]) -> None:
        self.form = form
        self.by = by
        self.results = results

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i):  # type: ignore[override]
        return self.results[i]

    def __iter__(self) -> Iterator[FitResult]:
        return iter(self.results)

    def get(self, **group: Any) -> FitResult:
        """The fit whose group matches all of ``group`` (e.g. ``get(model="llama-3-8b")``)."""
        found = [
            f for f in self.results if all(str(f.group.get(k)) == str(v) for k, v in group.items())
        ]
        if len(found) != 1:
            known = "; ".join(f.label for f in self.results)
            raise LawError(f"{len(found)} fits match {group}; fits: {known}")
        return found[0]

    def only(self) -> FitResult:
        """The single fit (an error when there are several groups)."""
        if len(self.results) != 1:
            raise LawError(
                f"{len(self.results)} fits ({', '.join(f.label for f in self.results)}); "
                "pick one with .get(...)"
            )
        return self.results[0]

    def to_frame(self) -> pd.DataFrame:
        """One row per fit: group, n, each coefficient (estimate, stderr, CI), statistics."""
        rows = []
        for f in self.results:
            row: dict[str, Any] = dict(f.group)
            row["n"] = f.n
            for name, c in f.coefficients.items():
                row[name] = c.estimate
                row[f"{name}_se"] = c.stderr
                row[f"{name}_lo"] = c.ci_low
                row[f"{name}_hi"] = c.ci_high
            row.update(
                adj_r2=f.adj_r2,
                r2_kind=f.r2_kind,
                adj_r2_centered=f.adj_r2_centered,
                adj_r2_uncentered=f.adj_r2_uncentered,
                f=f.f,
                f_pvalue=f.f_pvalue,
                aic=f.aic,
                bic=f.bic,
            )
            for split, h in f.heldout.items():
                row[f"mape_pct[{split}]"] = h["mape_pct"]
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON-ready list of all fits (the schema of ``complaw fit --json``)."""
        return [f.to_dict() for f in self.results]


def _num(x: Any) -> float | None:
    """A float, or None for NaN/inf/None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def inputs_of(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The (L0, r, D) arrays of a validated table."""
    return {c: df[c].to_numpy(dtype=float) for c in ("L0", "r", "D")}


def lstsq_fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Plain numpy OLS: (coefficients, standard errors, residual degrees of freedom).

    The fast path for repeated fits (simulations, held-out error); `fit` uses statsmodels.
    """
    n, k = X.shape
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    dof = n - k
    resid = y - X @ beta
    sigma2 = resid @ resid / dof if dof > 0 else np.nan
    if rank < k:
        return beta, np.full(k, np.nan), dof
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ X)) * sigma2)
    return beta, se, dof


def _units(n: int, clusters: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The resampling unit of each of ``n`` rows (itself, or its cluster) and their count."""
    if clusters is None:
        return np.arange(n), n
    _, codes = np.unique(np.asarray(clusters), return_inverse=True)
    return codes, int(codes.max()) + 1


def bootstrap_coefficients(
    X: np.ndarray,
    y: np.ndarray,
    n_resamples: int,
    seed: int = 0,
    clusters: np.ndarray | None = None,
    chunk: int = 250,
) -> np.ndarray:
    """OLS coefficients of ``n_resamples`` seeded bootstrap resamples (rows x coefficients).

    Rows (experiments) are resampled with replacement; with ``clusters`` whole clusters are
    (e.g. all rows of a model). Vectorised: each resample is a row of counts w, and its normal
    equations are (X' diag(w) X) b = X' diag(w) y, built for a chunk of resamples by one
    matrix product. Resamples whose design is singular give NaN rows.
    """
    n, k = X.shape
    rng = np.random.default_rng(seed)
    codes, n_units = _units(n, clusters)
    # per-row outer products and cross products, flattened: (n, k*k + k)
    Z = np.concatenate([(X[:, :, None] * X[:, None, :]).reshape(n, k * k), X * y[:, None]], axis=1)
    out = np.empty((n_resamples, k))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        picks = rng.integers(0, n_units, size=(b, n_units))
        offsets = (np.arange(b) * n_units)[:, None]
        counts = np.bincount((picks + offsets).ravel(), minlength=b * n_units).reshape(b, n_units)
        W = counts[:, codes].astype(float) if clusters is not None else counts.astype(float)
        S = W @ Z
        XtX = S[:, : k * k].reshape(b, k, k)
        Xty = S[:, k * k :]
        try:
            out[start : start + b] = np.linalg.solve(XtX, Xty[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            for i in range(b):
                try:
                    out[start + i] = np.linalg.solve(XtX[i], Xty[i])
                except np.linalg.LinAlgError:
                    out[start + i] = np.nan
    return out


def _check_identifiable(X: np.ndarray, names: list[str], label: str) -> None:
    k = X.shape[1]
    if np.linalg.matrix_rank(X) == k:
        return
    constant = [n for n, col in zip(names, X.T, strict=True) if np.ptp(col) == 0 and n != CONST]
    hint = ""
    if constant and CONST in names:
        hint = (
            f"; {', '.join(constant)} is constant in this group and collides with the intercept: "
            "fit without --intercept or pool more groups"
        )
    elif constant:
        hint = f"; {', '.join(constant)} is constant in this group: vary it or use another form"
    raise NotIdentifiableError(
        f"coefficients {', '.join(names)} are not identifiable for {label} "
        f"(rank {np.linalg.matrix_rank(X)} < {k}){hint}"
    )


def _coefficients(names: list[str], est: np.ndarray, cov: np.ndarray, dof: float,
                  level: float) -> dict[str, Coefficient]:
    """t-based standard errors, CIs and p-values from estimates and their covariance."""
    from scipy.stats import t as student

    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    q = student.ppf(0.5 + level / 2.0, dof) if dof > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * student.sf(np.abs(est / se), dof) if dof > 0 else np.full(len(est), np.nan)
    return {
        n: Coefficient(n, float(est[i]), float(se[i]), float(est[i] - q * se[i]),
                       float(est[i] + q * se[i]), float(p[i]))
        for i, n in enumerate(names)
    }


def _add_bootstrap(coefficients: dict[str, Coefficient], draws: np.ndarray, level: float,
                   n_resamples: int, seed: int, by: str | None) -> dict[str, Any]:
    tail = 100 * (1 - level) / 2
    ok = ~np.isnan(draws).any(axis=1)
    if ok.any():
        lo, hi = np.percentile(draws[ok], [tail, 100 - tail], axis=0)
        for i, c in enumerate(coefficients.values()):
            c.boot_low, c.boot_high = float(lo[i]), float(hi[i])
    return {"resamples": int(n_resamples), "seed": int(seed), "by": by or "row",
            "failed": int((~ok).sum())}


def _resample_weights(n: int, n_resamples: int, seed: int,
                      clusters: np.ndarray | None) -> Iterator[np.ndarray]:
    """Row counts of seeded case-bootstrap resamples (of rows, or of whole clusters)."""
    rng = np.random.default_rng(seed)
    codes, units = _units(n, clusters)
    for _ in range(n_resamples):
        counts = np.bincount(rng.integers(0, units, size=units), minlength=units)
        yield counts[codes].astype(float)


def _statistics(form: Form, L: np.ndarray, z: np.ndarray, resid: np.ndarray, k: int,
                level: float) -> dict[str, Any]:
    """Goodness of fit of a fit without a constant column's special status (curve fits):
    centred R² on the fit's scale, F of the model against a constant, AIC/BIC on the scale of
    L."""
    from scipy.stats import f as fisher

    n = len(z)
    rss = float(resid @ resid)
    tss_c = float(((z - z.mean()) ** 2).sum())
    tss_u = float(z @ z)
    r2_c = 1.0 - rss / tss_c if tss_c > 0 else np.nan
    r2_u = 1.0 - rss / tss_u if tss_u > 0 else np.nan
    dof = n - k
    f_value = ((tss_c - rss) / (k - 1)) / (rss / dof) if k > 1 and dof > 0 and rss > 0 else np.nan
    llf = (-0.5 * n * (np.log(2 * np.pi * rss / n) + 1.0) + form.scale.log_jacobian(L)
           if rss > 0 else np.inf)
    return dict(
        n=n, df_model=float(k - 1), df_resid=float(dof), r2=r2_c,
        adj_r2=1.0 - (n - 1) / dof * (1.0 - r2_c) if dof > 0 else np.nan, r2_kind="centered",
        r2_centered=r2_c, adj_r2_centered=1.0 - (n - 1) / dof * (1.0 - r2_c) if dof > 0
        else np.nan, r2_uncentered=r2_u,
        adj_r2_uncentered=1.0 - n / dof * (1.0 - r2_u) if dof > 0 else np.nan,
        f=f_value, f_pvalue=float(fisher.sf(f_value, k - 1, dof)) if np.isfinite(f_value)
        else np.nan, llf=llf, aic=-2.0 * llf + 2.0 * k, bic=-2.0 * llf + np.log(n) * k,
        resid_std=float(np.sqrt(rss / dof)) if dof > 0 else np.nan, level=level,
    )


ROBUST = {
    "linear": (lambda s: s, lambda s: np.ones_like(s)),
    "soft_l1": (lambda s: 2.0 * (np.sqrt(1.0 + s) - 1.0), lambda s: 1.0 / np.sqrt(1.0 + s)),
    "huber": (lambda s: np.where(s <= 1.0, s, 2.0 * np.sqrt(s) - 1.0),
              lambda s: np.where(s <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(s, 1.0)))),
}
"""scipy's robust losses rho(s) of s = (residual / f_scale)², and their IRLS weights rho'(s)."""


class CurveFitter:
    """Robust least squares of a `CurveForm` on (L0, r, D, L), with its coefficients moved
    to log scale where their bounds are positive (so D_l can span decades)."""

    def __init__(self, form: CurveForm, data: dict[str, np.ndarray], L: np.ndarray) -> None:
        self.form = form
        # predictions depend on (L0, r, D) only: computed once per distinct point
        points, self.inverse = np.unique(np.column_stack([data["L0"], data["r"], data["D"]]),
                                         axis=0, return_inverse=True)
        self.inverse = self.inverse.ravel()
        self.data = {"L0": points[:, 0], "r": points[:, 1], "D": points[:, 2]}
        self.z = form.scale.to_scale(L)
        self.names = form.coef_names()
        lo = np.array([c.bounds[0] for c in form.coefs], dtype=float)
        hi = np.array([c.bounds[1] for c in form.coefs], dtype=float)
        self.logs = lo > 0
        self.lo = np.where(self.logs, np.log(np.where(self.logs, lo, 1.0)), lo)
        self.hi = np.where(self.logs, np.log(np.where(self.logs, hi, 1.0)), hi)

    def natural(self, u: np.ndarray) -> np.ndarray:
        return np.where(self.logs, np.exp(u), u)

    def internal(self, theta: np.ndarray) -> np.ndarray:
        u = np.where(self.logs, np.log(np.where(self.logs, theta, 1.0)), theta)
        span = self.hi - self.lo
        pad = np.where(np.isfinite(span), 1e-6 * span, 0.0)
        return np.clip(u, self.lo + pad, self.hi - pad)

    def residuals(self, u: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        res = self.residuals_many(np.asarray(u, float)[None, :])[0]
        return res if weights is None else res * np.sqrt(weights)

    def residuals_many(self, U: np.ndarray) -> np.ndarray:
        """Residuals (rows of U x data rows) for many internal coefficient vectors at once."""
        theta = self.natural(U)
        pred = self.form.predict({n: theta[:, [j]] for j, n in enumerate(self.names)},
                                 self.data)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            zhat = self.form.scale.to_scale(pred)
        return np.where(np.isfinite(zhat), zhat, self.z.max() + 1e3)[:, self.inverse] - self.z

    def solve_many(self, W: np.ndarray, theta0: np.ndarray, iters: int = 60) -> np.ndarray:
        """The fits (rows) for many row weightings W (resamples x rows) at once, each from
        ``theta0``: Levenberg-Marquardt on the robust loss by iteratively reweighted least
        squares, vectorised over the resamples (the bootstrap's refits)."""
        f = self.form.f_scale
        rho, weight = ROBUST[self.form.loss]
        k = len(self.names)
        U = np.tile(self.internal(np.asarray(theta0, float)), (len(W), 1))
        lam = np.full(len(W), 1e-3)

        def cost(R: np.ndarray, Wr: np.ndarray) -> np.ndarray:
            return 0.5 * f * f * np.sum(Wr * rho((R / f) ** 2), axis=1)

        R = self.residuals_many(U)
        C = cost(R, W)
        active = np.ones(len(W), dtype=bool)
        eye = np.eye(k)
        for _ in range(iters):
            idx = np.flatnonzero(active)
            if not len(idx):
                break
            Ua, Ra, Wa = U[idx], R[idx], W[idx]
            J = np.stack([(self.residuals_many(Ua + 1e-6 * eye[j]) - Ra) / 1e-6
                          for j in range(k)], axis=2)
            Jw = np.swapaxes(J * (Wa * weight((Ra / f) ** 2))[:, :, None], 1, 2)
            A = Jw @ J
            g = (Jw @ Ra[:, :, None])[:, :, 0]
            damp = lam[idx, None, None] * (eye * np.einsum("bkk->bk", A)[:, None, :] + 1e-12)
            step = -np.linalg.solve(A + damp, g[..., None])[..., 0]
            Un = np.clip(Ua + step, self.lo, self.hi)
            Rn = self.residuals_many(Un)
            Cn = cost(Rn, Wa)
            better = Cn < C[idx]
            gain = (C[idx] - Cn) / np.maximum(C[idx], 1e-300)
            U[idx[better]], R[idx[better]], C[idx[better]] = Un[better], Rn[better], Cn[better]
            lam[idx] = np.where(better, lam[idx] / 3.0, lam[idx] * 4.0)
            active[idx[(better & (gain < 1e-9)) | (lam[idx] > 1e8)]] = False
        return self.natural(U)

    def solve(self, starts: np.ndarray, weights: np.ndarray | None = None,
              keep: int = 4) -> np.ndarray:
        """The natural coefficients of the best fit from the ``keep`` most promising of
        ``starts`` (ranked by their starting cost, which is cheap to compute)."""
        from scipy.optimize import least_squares

        points = [self.internal(np.asarray(t, float)) for t in starts]
        if len(points) > keep:
            costs = [float(np.sum(self.residuals(u, weights) ** 2)) for u in points]
            points = [points[i] for i in np.argsort(costs)[:keep]]
        best, best_cost = None, np.inf
        for u0 in points:
            try:
                res = least_squares(
                    self.residuals, u0, bounds=(self.lo, self.hi), loss=self.form.loss,
                    f_scale=self.form.f_scale, args=(weights,), x_scale="jac", max_nfev=400,
                )
            except ValueError:
                continue
            if np.isfinite(res.cost) and res.cost < best_cost:
                best, best_cost = res.x, res.cost
        if best is None:
            raise LawError(f"the {self.form.name} fit did not converge from any start")
        return self.natural(best)


def _fit_curve(df: pd.DataFrame, form: CurveForm, *, intercept: bool, label: str, level: float,
               bootstrap: int, seed: int, bootstrap_by: str | None) -> dict[str, Any]:
    names = form.coef_names()
    data = inputs_of(df)
    L = df["L"].to_numpy(float)
    fitter = CurveFitter(form, data, L)
    theta = fitter.solve(form.starts(seed=seed))
    law = Law("fit", form.name, str(df["metric"].iloc[0]),
              dict(zip(names, theta, strict=True)))
    resid = fitter.residuals(fitter.internal(theta))
    J = law.gradient(data)
    stats = _statistics(form, L, fitter.z, resid, len(names), level)
    dof = stats["df_resid"]
    cov = np.linalg.pinv(J.T @ J) * (stats["resid_std"] ** 2)
    out = dict(stats, coefficients=_coefficients(names, theta, cov, dof, level), cov=cov,
               draws=None, bootstrap=None)
    if bootstrap:
        clusters = df[bootstrap_by].to_numpy() if bootstrap_by else None
        W = np.array(list(_resample_weights(len(df), bootstrap, seed, clusters)))
        chunk = max(1, int(2e6 // (len(df) * len(names))))
        draws = np.concatenate([fitter.solve_many(W[i:i + chunk], theta)
                                for i in range(0, bootstrap, chunk)])
        out["draws"] = draws
        out["bootstrap"] = _add_bootstrap(out["coefficients"], draws, level, bootstrap, seed,
                                          bootstrap_by)
    return out


def _fit_ols(df: pd.DataFrame, form: LinearForm, *, intercept: bool, label: str, level: float,
             bootstrap: int, seed: int, bootstrap_by: str | None) -> dict[str, Any]:
    names = form.coef_names(intercept)
    data = inputs_of(df)
    X = form.design(data, intercept)
    y = form.response(df["L"].to_numpy(float), data)
    _check_identifiable(X, names, label)

    from statsmodels.regression.linear_model import OLS  # slow to import: only when fitting

    res = OLS(y, X).fit()
    n, k = X.shape
    rss = float(res.ssr)
    tss_u = float(y @ y)
    tss_c = float(((y - y.mean()) ** 2).sum())
    r2_u = 1.0 - rss / tss_u if tss_u > 0 else np.nan
    r2_c = 1.0 - rss / tss_c if tss_c > 0 else np.nan
    llf = float(res.llf) + form.scale.log_jacobian(df["L"].to_numpy(float))
    ci = np.asarray(res.conf_int(1.0 - level))
    params, bse, pvalues = (np.asarray(v) for v in (res.params, res.bse, res.pvalues))
    coefficients = {
        name: Coefficient(name, float(params[i]), float(bse[i]), float(ci[i, 0]),
                          float(ci[i, 1]), float(pvalues[i]))
        for i, name in enumerate(names)
    }
    out = dict(
        n=n, df_model=float(res.df_model), df_resid=float(res.df_resid),
        r2=float(res.rsquared), adj_r2=float(res.rsquared_adj),
        r2_kind="centered" if res.k_constant else "uncentered", r2_centered=r2_c,
        adj_r2_centered=1.0 - (n - 1) / (n - k) * (1.0 - r2_c), r2_uncentered=r2_u,
        adj_r2_uncentered=1.0 - n / (n - k) * (1.0 - r2_u),
        f=float(res.fvalue) if res.fvalue is not None else np.nan,
        f_pvalue=float(res.f_pvalue) if res.f_pvalue is not None else np.nan,
        llf=llf, aic=-2.0 * llf + 2.0 * k, bic=-2.0 * llf + np.log(n) * k,
        resid_std=float(np.sqrt(res.scale)), cov=np.asarray(res.cov_params()),
        level=level, coefficients=coefficients, draws=None, bootstrap=None,
    )
    if bootstrap:
        clusters = df[bootstrap_by].to_numpy() if bootstrap_by else None
        draws = bootstrap_coefficients(X, y, bootstrap, seed=seed, clusters=clusters)
        out["draws"] = draws
        out["bootstrap"] = _add_bootstrap(coefficients, draws, level, bootstrap, seed,
                                          bootstrap_by)
    return out


Fitter = Callable[..., dict[str, Any]]
FITTERS: dict[type[Form], Fitter] = {LinearForm: _fit_ols, CurveForm: _fit_curve}
"""How each kind of form is fitted: ``fitter(rows, form, *, intercept, label, level, bootstrap,
seed, bootstrap_by)`` returns the `FitResult` fields but ``form``, ``intercept``, ``metric`` and
``group``. A new kind of form registers its fitter here (``two-step``: `complaw.laws.twostep`)."""


def _fitter(form: Form) -> Fitter:
    for kind in type(form).__mro__:
        if kind in FITTERS:
            return FITTERS[kind]
    raise LawError(f"form {form.name} is a {type(form).__name__}, which no fitter fits")


def fit_group(
    df: pd.DataFrame,
    form: str | Form = "eq1",
    *,
    intercept: bool | None = None,
    group: dict[str, Any] | None = None,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
    bootstrap_by: str | None = None,
    holdout: Sequence[str] = (),
) -> FitResult:
    """Fit one law on all rows of a validated table (one metric, plus the rows of the form's
    companion metric when it has one): OLS for a linear form, robust nonlinear least squares
    for a curve form, both steps for a two-step form (`FITTERS`).

    ``bootstrap`` resamples (seeded by ``seed``; whole ``bootstrap_by`` clusters when given)
    add percentile CIs; ``holdout`` names splits (``r:0.5``, ``D``, ``model``, ``kfold:5``, ...;
    see `complaw.laws.holdout`) whose held-out error the result carries.
    """
    form = get_form(form)
    linear = isinstance(form, LinearForm)
    use = bool(form.intercept if intercept is None else intercept) if linear else False
    if intercept and not linear:
        raise LawError(f"form {form.name} is not linear; it has no --intercept option")
    group = dict(group or {})
    own, _ = form.split_rows(df)
    metrics = sorted(own["metric"].unique())
    if len(metrics) != 1:
        raise LawError(f"one fit needs one metric; got {', '.join(metrics)}; group by metric")
    metric = metrics[0]
    if metric not in form.metrics:
        raise LawError(f"form {form.name} models {', '.join(form.metrics)}, not {metric}")
    group.setdefault("metric", metric)
    label = " ".join(f"{k}={v}" for k, v in group.items())
    check_enough_rows(len(own), len(form.coef_names(use)), f"the {form.name} fit of {label}")
    stats = _fitter(form)(df, form, intercept=use, label=label, level=level,
                          bootstrap=bootstrap, seed=seed, bootstrap_by=bootstrap_by)
    result = FitResult(form=form.name, intercept=use, metric=metric, group=group, **stats)
    if holdout:
        from complaw.laws.holdout import heldout_error

        for split in holdout:
            h = heldout_error(df, form, split, intercept=use, level=level)
            result.heldout[h.split] = h.summary()
    return result


def _split_names(holdout: Sequence[str] | str | None) -> list[str]:
    if holdout is None:
        return []
    return [holdout] if isinstance(holdout, str) else list(holdout)


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
) -> Fits:
    """Fit ``form`` on a law table, one law per group of ``by`` columns (and of metric).

    Rows whose metric the form does not model are left out. ``form=None`` fits every metric of
    the table with its default form (`default_form`: eq1 for loss, task loss and accuracy,
    runtime for runtime). A form with extra grouping columns (`Form.by`: ``two-step`` is fitted
    per dataset) is grouped by them too; a form with a companion metric (``two-step``: the task
    loss) gets the companion rows of each group, and groups without any (task means, records
    older than task loss) are left out; when no group has any, the error says why.
    ``intercept`` None uses the form's default (none for Eq. 1-3, as in the paper).
    ``bootstrap`` > 0 adds seeded percentile CIs from that many resamples. ``holdout`` names
    held-out splits (see `complaw.laws.holdout`) whose error each fit carries.

    Examples: Table 1 is ``fit(df, "eq1")``; Table 2 ``fit(df, "eq1", by="model")``; Table 3
    ``by="calibration"``; Table 6 ``by="dataset"``; Table 4 ``fit(df, "runtime", by="model")``.
    """
    df = validate(df)
    if df.empty:
        raise LawError("the law table has no rows; nothing to fit")
    if bootstrap_by and bootstrap_by not in df.columns:
        raise LawError(f"cannot bootstrap by {bootstrap_by!r}: no such column")
    splits = _split_names(holdout)
    if form is None:
        metrics = sorted(df["metric"].unique())
        chosen = {m: default_form(m) for m in metrics}
        what = "the default forms"
    else:
        the_form = get_form(form)
        metrics = list(the_form.metrics)
        chosen = dict.fromkeys(metrics, the_form)
        what = f"form {the_form.name}"
    keys, groups = _groups(df, metrics, _extra_by(chosen.values(), _by_list(by)), what)
    parts = [(g, _with_companion(df, p, g, chosen[g["metric"]])) for g, p in groups]
    having = [(g, p) for g, p in parts if chosen[g["metric"]].companion is None
              or (p["metric"] == chosen[g["metric"]].companion).any()]
    results = [
        fit_group(
            part, chosen[group["metric"]], intercept=intercept, group=group, level=level,
            bootstrap=bootstrap, seed=seed, bootstrap_by=bootstrap_by, holdout=splits,
        )
        for group, part in (having or parts[:1])  # none: the first group's fit says why
    ]
    name = ", ".join(dict.fromkeys(r.form for r in results))
    return Fits(name, keys, results)


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
            h = f.heldout.get(self.split) if self.split else None
            rows.append({
                **f.group, "form": f.form, "feasible": f.feasible, "k": len(f.coefficients),
                "n": f.n, "adj_r2": f.adj_r2, "r2_kind": f.r2_kind, "aic": f.aic, "bic": f.bic,
                "split": self.split, "heldout_n": h["n"] if h else 0,
                "mape_pct": h["mape_pct"] if h else None,
                "degradation_mape_pct": h["degradation_mape_pct"] if h else None,
                "coverage": h["coverage"] if h else None, "rank": rank,
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
                d["heldout"] = f.heldout.get(self.split)
            out.append(d)
        return out


def _score(f: FitResult, split: str | None) -> tuple[float, float]:
    h = f.heldout.get(split) if split else None
    mape = h["mape_pct"] if h and h["mape_pct"] is not None else np.inf
    return (mape, f.aic if np.isfinite(f.aic) else np.inf)


def compare(
    df: pd.DataFrame,
    forms: Sequence[str | Form] | None = None,
    by: Sequence[str] | str | None = None,
    *,
    holdout: str | None = "r:0.5",
    level: float = 0.95,
) -> Comparison:
    """Fit every form in ``forms`` (None: every registered form of each metric) on each group
    and rank them by held-out MAPE on ``holdout`` (then AIC). Forms that cannot be fitted on a
    group (too few rows, not identifiable, no such metric, no companion rows) are left out of
    that group. A metric is grouped by ``by`` and by every column one of its forms is always
    fitted per (`Form.by`), so that all its forms compete on the same groups: with task-loss
    rows, accuracy is compared per dataset (task), where ``two-step`` can be fitted."""
    df = validate(df)
    by_list = _by_list(by)
    present = set(df["metric"])
    grouped: dict[tuple, list[FitResult]] = {}
    for metric in sorted(present):
        candidates = [
            form for form in
            ([get_form(f) for f in forms] if forms is not None else forms_for(metric))
            if metric in form.metrics and (form.companion is None or form.companion in present)
        ]
        _, groups = _groups(df, [metric], _extra_by(candidates, by_list), "compare")
        for form in candidates:
            for group, part in groups:
                try:
                    f = fit_group(_with_companion(df, part, group, form), form, group=group,
                                  level=level, holdout=[holdout] if holdout else ())
                except LawError:
                    continue
                grouped.setdefault(tuple(group.items()), []).append(f)
    if not grouped:
        raise LawError("no form could be fitted on any group of this table")
    fits, ranks = [], []
    for key in sorted(grouped, key=lambda k: [str(v) for _, v in k]):
        ranked = sorted(grouped[key], key=lambda f: _score(f, holdout))
        fits += ranked
        ranks += list(range(1, len(ranked) + 1))
    return Comparison(holdout, by_list, fits, ranks)
