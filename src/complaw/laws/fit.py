"""Estimating one compression law: OLS or robust nonlinear least squares, statistics, bootstrap.

`fit_group` fits one form on the rows of one group and returns a `FitResult`; fitting a whole
table group by group, with held-out error, is `complaw.laws.select.fit`. A `LinearForm` is
fitted by OLS (`ols`); a `CurveForm` by scipy's robust least squares (``soft_l1`` or
``huber``) on log residuals from every starting point the form declares, keeping the best
(as Epoch AI's replication of the Chinchilla fit does). Both give the covariance s² (J'J)^-1
(J = X for OLS; the Gauss-Newton one at a curve's optimum), share `_statistics`, and draw their
bootstrap resamples from `resample_weights`, so one seed resamples the same rows for every form
(a curve's bootstrap refits them from the optimum). A curve coefficient that ends on one of its
declared bounds is flagged (`Coefficient.at_bound`).

R² conventions. For a regression without a constant column statsmodels reports the
*uncentered* R² (1 - RSS / sum y²); with one (an explicit intercept, or an implicit one such as
log L0 when a group has a single L0) it reports the *centered* R² (1 - RSS / sum (y - ȳ)²).
``r2``, ``adj_r2`` and ``f`` are what statsmodels reports for a linear form (a curve fit counts
as having a constant), ``r2_kind`` says which; both R²s are always given as well, labelled.
Adjusted: uncentered 1 - n/(n-k) (1-R²), centered 1 - (n-1)/(n-k) (1-R²), with k
coefficients.

AIC/BIC are computed on the scale of L itself (the likelihood on the form's scale plus its
Jacobian, `Scale.log_jacobian`: -sum log L for log L), so forms fitted on log L, on L
(``additive``) and on logit L (``two-step``) can be compared.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.forms import CONST, CurveForm, Form, LinearForm, get_form
from complaw.laws.law import Law
from complaw.laws.table import check_enough_rows

if TYPE_CHECKING:
    from complaw.laws.holdout import HeldOutSummary


class NotIdentifiableError(LawError):
    """The design matrix is rank deficient, so some coefficient cannot be estimated."""


@dataclass
class Coefficient:
    """One fitted coefficient with its standard error, t-based CI and optional bootstrap CI;
    ``at_bound``: the fit ended on one of the coefficient's declared bounds (within 1e-6
    relative), so the optimum may lie beyond it and its intervals are not to be trusted."""

    name: str
    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    pvalue: float
    boot_low: float | None = None
    boot_high: float | None = None
    at_bound: bool = False
    unidentified: bool = False
    """The rows cannot identify it (`complaw.laws.forms.Coef.varies`): held at its neutral
    value, without an interval."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "estimate": _num(self.estimate),
            "stderr": _num(self.stderr),
            "ci": [_num(self.ci_low), _num(self.ci_high)],
            "pvalue": _num(self.pvalue),
            "at_bound": self.at_bound,
            "unidentified": self.unidentified,
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
    heldout: Mapping[str, HeldOutSummary] = field(default_factory=lambda: MappingProxyType({}))
    """Held-out error by split name (`complaw.laws.holdout.HeldOutSummary`), read-only: the
    splits are computed when the fit is made (`complaw.laws.select.fit`)."""
    pooling: dict[str, Any] | None = None
    """A pooled fit's grouping, shared coefficients, spreads tau and means
    (`complaw.laws.pooling`); None for a fit of one group alone."""

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

    @property
    def at_bounds(self) -> list[str]:
        """The coefficients whose estimate sits on a declared bound (`Coefficient.at_bound`)."""
        return [k for k, c in self.coefficients.items() if c.at_bound]

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
        first split, or None), ``at_bounds`` (coefficients on a bound), then every
        statistic."""
        first = next(iter(self.heldout.values()), None)
        return {
            "form": self.form,
            "group": {k: _plain(v) for k, v in self.group.items()},
            "feasible": self.feasible,
            "n": self.n,
            "coefficients": {k: _num(c.estimate) for k, c in self.coefficients.items()},
            "heldout": None if first is None else first.to_dict(),
            "at_bounds": self.at_bounds,
            "heldout_all": [h.to_dict() for h in self.heldout.values()],
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
            "pooling": self.pooling,
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
                row[f"mape_pct[{split}]"] = h.mape_pct
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
    """The (L0, r, D) arrays of a validated table, and T0 (NaN where the table lacks it)."""
    T0 = df["T0"] if "T0" in df.columns else pd.Series(np.nan, index=df.index)
    return {"L0": df["L0"].to_numpy(float), "r": df["r"].to_numpy(float),
            "D": df["D"].to_numpy(float), "T0": T0.to_numpy(float)}


def ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ordinary least squares of ``y`` on ``X`` (of full column rank): the coefficients, their
    covariance s² (X'X)^-1 and the residuals."""
    theta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ theta
    return theta, covariance(X, resid), resid


def covariance(J: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """s² (J'J)^-1 with s² = RSS / (n - k): OLS's covariance (J = X), and a least-squares
    curve fit's Gauss-Newton one (J: the Jacobian of its residuals at the optimum)."""
    dof = len(resid) - J.shape[1]
    return np.linalg.pinv(J.T @ J) * (resid @ resid / dof if dof > 0 else np.nan)


def _has_constant(X: np.ndarray) -> bool:
    """Whether the columns of X span a constant (an intercept, or an implicit one such as log
    L0 in a group with one L0): statsmodels' test, which decides the R² it reports."""
    return bool(np.linalg.matrix_rank(np.column_stack([np.ones(len(X)), X]))
                == np.linalg.matrix_rank(X))


def resample_weights(n: int, n_resamples: int, seed: int = 0,
                     clusters: np.ndarray | None = None) -> np.ndarray:
    """Row counts (resamples x rows) of seeded case-bootstrap resamples of ``n`` rows, or with
    ``clusters`` (one label per row) of whole clusters (e.g. all rows of a model): the one
    resampler of every fit, so one seed resamples the same rows for every form."""
    if clusters is None:
        codes, units = np.arange(n), n
    else:
        _, codes = np.unique(np.asarray(clusters), return_inverse=True)
        codes, units = codes.ravel(), int(codes.max()) + 1
    picks = np.random.default_rng(seed).integers(0, units, size=(n_resamples, units))
    offsets = (np.arange(n_resamples) * units)[:, None]
    counts = np.bincount((picks + offsets).ravel(), minlength=n_resamples * units)
    return counts.reshape(n_resamples, units)[:, codes].astype(float)


def bootstrap_coefficients(X: np.ndarray, y: np.ndarray, weights: np.ndarray,
                           chunk: int = 250) -> np.ndarray:
    """OLS coefficients of each bootstrap resample (rows of ``weights``, row counts from
    `resample_weights`): resamples x coefficients.

    Vectorised: the normal equations of a resample with counts w are
    (X' diag(w) X) b = X' diag(w) y, built for a chunk of resamples by one matrix product.
    Resamples whose design is singular give NaN rows.
    """
    n, k = X.shape
    # per-row outer products and cross products, flattened: (n, k*k + k)
    Z = np.concatenate([(X[:, :, None] * X[:, None, :]).reshape(n, k * k), X * y[:, None]], axis=1)
    out = np.empty((len(weights), k))
    for start in range(0, len(weights), chunk):
        S = weights[start : start + chunk] @ Z
        XtX = S[:, : k * k].reshape(len(S), k, k)
        Xty = S[:, k * k :]
        try:
            out[start : start + len(S)] = np.linalg.solve(XtX, Xty[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            for i in range(len(S)):
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
                  level: float, at_bound: np.ndarray | None = None,
                  unidentified: Collection[int] = ()) -> dict[str, Coefficient]:
    """t-based standard errors, CIs and p-values from estimates and their covariance
    (``at_bound``: which estimates sit on a bound, `on_bound`; ``unidentified``: which the rows
    cannot identify)."""
    from scipy.stats import t as student

    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    q = student.ppf(0.5 + level / 2.0, dof) if dof > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * student.sf(np.abs(est / se), dof) if dof > 0 else np.full(len(est), np.nan)
    return {
        n: Coefficient(n, float(est[i]), float(se[i]), float(est[i] - q * se[i]),
                       float(est[i] + q * se[i]), float(p[i]),
                       at_bound=at_bound is not None and bool(at_bound[i])
                       and i not in unidentified, unidentified=i in unidentified)
        for i, n in enumerate(names)
    }


def on_bound(theta: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which estimates lie on their (finite) lower or upper bound, within 1e-6 of the bound
    relative to its size (absolute 1e-6 for a bound within 1 of zero)."""
    near = [np.isfinite(b) & (np.abs(theta - b) <= 1e-6 * np.maximum(np.abs(b), 1.0))
            for b in (np.asarray(lo, float), np.asarray(hi, float))]
    return near[0] | near[1]


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


def _statistics(form: Form, L: np.ndarray, z: np.ndarray, resid: np.ndarray, k: int,
                level: float, constant: bool = True) -> dict[str, Any]:
    """Goodness of fit of ``k`` coefficients on the fit's scale ``z``, the likelihood and
    AIC/BIC on the scale of L. With a ``constant`` (a curve fit counts as one) R² is centred
    and F tests the model against a constant; without one, as statsmodels reports an OLS fit
    without a constant, R² is uncentred and F tests the model against zero."""
    from scipy.stats import f as fisher

    n = len(z)
    rss = float(resid @ resid)
    tss_c = float(((z - z.mean()) ** 2).sum())
    tss_u = float(z @ z)
    r2_c = 1.0 - rss / tss_c if tss_c > 0 else np.nan
    r2_u = 1.0 - rss / tss_u if tss_u > 0 else np.nan
    dof = n - k
    df_model = k - 1 if constant else k
    tss = tss_c if constant else tss_u
    f_value = ((tss - rss) / df_model) / (rss / dof) if df_model and dof > 0 and rss > 0 else np.nan
    llf = (-0.5 * n * (np.log(2 * np.pi * rss / n) + 1.0) + form.scale.log_jacobian(L)
           if rss > 0 else np.inf)
    adj_c = 1.0 - (n - 1) / dof * (1.0 - r2_c) if dof > 0 else np.nan
    adj_u = 1.0 - n / dof * (1.0 - r2_u) if dof > 0 else np.nan
    return dict(
        n=n, df_model=float(df_model), df_resid=float(dof), r2=r2_c if constant else r2_u,
        adj_r2=adj_c if constant else adj_u, r2_kind="centered" if constant else "uncentered",
        r2_centered=r2_c, adj_r2_centered=adj_c, r2_uncentered=r2_u, adj_r2_uncentered=adj_u,
        f=f_value, f_pvalue=float(fisher.sf(f_value, df_model, dof)) if np.isfinite(f_value)
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
        # the coefficients the rows cannot identify stay at their neutral values; u holds the
        # others (the free ones)
        self.unidentified = form.unidentified(self.data)
        self.fixed = np.array([self.unidentified.get(i, np.nan) for i in range(len(self.names))])
        self.free = np.array([i not in self.unidentified for i in range(len(self.names))])
        lo = np.array([c.bounds[0] for c in form.coefs], dtype=float)[self.free]
        hi = np.array([c.bounds[1] for c in form.coefs], dtype=float)[self.free]
        self.logs = lo > 0
        self.lo = np.where(self.logs, np.log(np.where(self.logs, lo, 1.0)), lo)
        self.hi = np.where(self.logs, np.log(np.where(self.logs, hi, 1.0)), hi)

    def natural(self, u: np.ndarray) -> np.ndarray:
        """All coefficients (the last axis) from the free ones on their internal scale."""
        u = np.asarray(u, dtype=float)
        theta = np.broadcast_to(self.fixed, (*u.shape[:-1], len(self.fixed))).copy()
        theta[..., self.free] = np.where(self.logs, np.exp(u), u)
        return theta

    def internal(self, theta: np.ndarray) -> np.ndarray:
        """The free coefficients of ``theta`` (all of them) on their internal scale."""
        theta = np.asarray(theta, dtype=float)[..., self.free]
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
        k = int(self.free.sum())
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

        points = list(np.unique(self.internal(np.asarray(starts, float)), axis=0))
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


def _estimated(df: pd.DataFrame, form: Form, names: list[str], theta: np.ndarray,
               cov: np.ndarray, resid: np.ndarray, z: np.ndarray, *, constant: bool,
               level: float, bootstrap: int, seed: int, bootstrap_by: str | None,
               refit: Callable[[np.ndarray], np.ndarray],
               at_bound: np.ndarray | None = None,
               unidentified: Collection[int] = ()) -> dict[str, Any]:
    """The `FitResult` fields of estimates ``theta`` (covariance ``cov``, residuals ``resid``
    on the fit's scale ``z``): statistics, coefficients, and with ``bootstrap`` resamples
    (`resample_weights`) their refits ``refit(weights)`` as draws and percentile CIs."""
    stats = _statistics(form, df["L"].to_numpy(float), z, resid,
                        len(names) - len(unidentified), level, constant)
    coefficients = _coefficients(names, theta, cov, stats["df_resid"], level, at_bound,
                                 unidentified)
    out = dict(stats, coefficients=coefficients, cov=cov, draws=None, bootstrap=None)
    if bootstrap:
        clusters = df[bootstrap_by].to_numpy() if bootstrap_by else None
        out["draws"] = refit(resample_weights(len(df), bootstrap, seed, clusters))
        out["bootstrap"] = _add_bootstrap(coefficients, out["draws"], level, bootstrap, seed,
                                          bootstrap_by)
    return out


def _fit_curve(df: pd.DataFrame, form: CurveForm, *, intercept: bool, label: str, level: float,
               bootstrap: int, seed: int, bootstrap_by: str | None) -> dict[str, Any]:
    names = form.coef_names()
    data = inputs_of(df)
    fitter = CurveFitter(form, data, df["L"].to_numpy(float))
    theta = fitter.solve(form.starts(seed=seed))
    resid = fitter.residuals(fitter.internal(theta))
    J = Law("fit", form.name, str(df["metric"].iloc[0]),
            dict(zip(names, theta, strict=True))).gradient(data)
    free = fitter.free
    cov = np.zeros((len(names), len(names)))  # an unidentified coefficient does not vary
    cov[np.ix_(free, free)] = covariance(J[:, free], resid)
    chunk = max(1, int(2e6 // (len(df) * len(names))))

    def refit(W: np.ndarray) -> np.ndarray:
        return np.concatenate([fitter.solve_many(W[i:i + chunk], theta)
                               for i in range(0, len(W), chunk)])

    bounds = np.array([c.bounds for c in form.coefs], dtype=float)
    return _estimated(df, form, names, theta, cov, resid, fitter.z,
                      constant=True, level=level, bootstrap=bootstrap, seed=seed,
                      bootstrap_by=bootstrap_by, refit=refit,
                      at_bound=on_bound(theta, bounds[:, 0], bounds[:, 1]),
                      unidentified=tuple(fitter.unidentified))


def _fit_ols(df: pd.DataFrame, form: LinearForm, *, intercept: bool, label: str, level: float,
             bootstrap: int, seed: int, bootstrap_by: str | None) -> dict[str, Any]:
    names = form.coef_names(intercept)
    data = inputs_of(df)
    X = form.design(data, intercept)
    y = form.response(df["L"].to_numpy(float), data)
    _check_identifiable(X, names, label)
    theta, cov, resid = ols(X, y)
    return _estimated(df, form, names, theta, cov, resid, y, constant=_has_constant(X),
                      level=level, bootstrap=bootstrap, seed=seed, bootstrap_by=bootstrap_by,
                      refit=lambda W: bootstrap_coefficients(X, y, W))


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
) -> FitResult:
    """Fit one law on all rows of a validated table (one metric, plus the rows of the form's
    companion metric when it has one): OLS for a linear form, robust nonlinear least squares
    for a curve form, both steps for a two-step form (`FITTERS`).

    ``bootstrap`` resamples (seeded by ``seed``; whole ``bootstrap_by`` clusters when given)
    add percentile CIs. (Held-out error: `complaw.laws.holdout`; fits of a whole table that
    carry it: `complaw.laws.select.fit`.)
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
    if not form.models(metric):
        raise LawError(f"form {form.name} models {', '.join(form.modelled())}, not {metric}")
    group.setdefault("metric", metric)
    label = " ".join(f"{k}={v}" for k, v in group.items())
    if form.companion is None:  # a two-step fit checks each step's rows itself
        check_enough_rows(len(own), len(form.coef_names(use)), f"the {form.name} fit of {label}")
    stats = _fitter(form)(df, form, intercept=use, label=label, level=level,
                          bootstrap=bootstrap, seed=seed, bootstrap_by=bootstrap_by)
    return FitResult(form=form.name, intercept=use, metric=metric, group=group, **stats)

