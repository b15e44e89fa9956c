"""Fitting compression laws: OLS with statsmodels, honest statistics, bootstrap, held-out error.

`fit(df, form, by=[...])` is the one entry point: it fits one law per group (the metric is
always part of the group) and returns a `Fits` collection of `FitResult`.

R² conventions. For a regression without a constant column statsmodels reports the
*uncentered* R² (1 - RSS / sum y²); with one (an explicit intercept, or an implicit one such as
log L0 when a group has a single L0) it reports the *centered* R² (1 - RSS / sum (y - ȳ)²).
``r2``, ``adj_r2`` and ``f`` are what statsmodels reports, ``r2_kind`` says which; both R²s
are always given as well, labelled. Adjusted: uncentered 1 - n/(n-k) (1-R²), centered
1 - (n-1)/(n-k) (1-R²), with k coefficients.

AIC/BIC are computed on the scale of L itself (the log-space likelihood plus its Jacobian,
-sum log L), so forms fitted on log L and on L (``additive``) can be compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.forms import CONST, Form, get_form
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
    logo: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: coefficients by name (estimate, stderr, ci) and every statistic."""
        return {
            "name": self.name,
            "form": self.form,
            "equation": get_form(self.form).equation,
            "intercept": self.intercept,
            "metric": self.metric,
            "group": {k: _plain(v) for k, v in self.group.items()},
            "n": self.n,
            "coefficients": {k: c.to_dict() for k, c in self.coefficients.items()},
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
            "logo": self.logo,
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
            if f.logo:
                row["logo_mape"] = f.logo["mape"]
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all fits."""
        return {"form": self.form, "by": self.by, "fits": [f.to_dict() for f in self.results]}


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
    if clusters is None:
        codes, n_units = np.arange(n), n
    else:
        _, codes = np.unique(np.asarray(clusters), return_inverse=True)
        n_units = int(codes.max()) + 1
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


def leave_one_group_out(
    df: pd.DataFrame, form: str | Form, column: str, intercept: bool | None = None
) -> dict[str, Any]:
    """Held-out error: for each level of ``column``, fit on the other rows, predict this one.

    Returns overall and per-level ``mape`` (mean |L_hat - L| / L) and ``rmse`` (on the
    regression scale: log L for the power laws). Levels whose complement cannot be fitted get
    None.
    """
    form = get_form(form)
    use = form.intercept if intercept is None else intercept
    data = inputs_of(df)
    X = form.design(data, use)
    y = form.response(df["L"].to_numpy(float), data)
    L = df["L"].to_numpy(float)
    offset = form.offset_of(data)
    labels = df[column].astype(str).to_numpy()
    per: dict[str, Any] = {}
    abs_rel, sq = [], []
    for level in sorted(set(labels)):
        held = labels == level
        Xt, yt = X[~held], y[~held]
        if len(yt) <= X.shape[1] or np.linalg.matrix_rank(Xt) < X.shape[1]:
            per[level] = {"n": int(held.sum()), "mape": None, "rmse": None}
            continue
        beta, *_ = np.linalg.lstsq(Xt, yt, rcond=None)
        eta = X[held] @ beta + offset[held]
        err_rel = np.abs(form.link_inverse(eta) - L[held]) / L[held]
        err_sq = (eta - offset[held] - y[held]) ** 2
        abs_rel.append(err_rel)
        sq.append(err_sq)
        per[level] = {
            "n": int(held.sum()),
            "mape": float(err_rel.mean()),
            "rmse": float(np.sqrt(err_sq.mean())),
        }
    if not abs_rel:
        return {"by": column, "mape": None, "rmse": None, "groups": per}
    return {
        "by": column,
        "mape": float(np.concatenate(abs_rel).mean()),
        "rmse": float(np.sqrt(np.concatenate(sq).mean())),
        "groups": per,
    }


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
    logo: str | None = None,
) -> FitResult:
    """Fit one law on all rows of a validated table (one metric) with statsmodels OLS.

    ``bootstrap`` resamples (seeded by ``seed``; whole ``bootstrap_by`` clusters when given)
    add percentile CIs; ``logo`` names a column for leave-one-group-out error.
    """
    form = get_form(form)
    use = form.intercept if intercept is None else intercept
    group = dict(group or {})
    metrics = sorted(df["metric"].unique())
    if len(metrics) != 1:
        raise LawError(f"one fit needs one metric; got {', '.join(metrics)}; group by metric")
    metric = metrics[0]
    group.setdefault("metric", metric)
    label = " ".join(f"{k}={v}" for k, v in group.items())
    names = form.coef_names(use)
    check_enough_rows(len(df), len(names), f"the {form.name} fit of {label}")
    data = inputs_of(df)
    X = form.design(data, use)
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
    adj_u = 1.0 - n / (n - k) * (1.0 - r2_u)
    adj_c = 1.0 - (n - 1) / (n - k) * (1.0 - r2_c)
    jacobian = float(np.log(df["L"].to_numpy(float)).sum()) if form.log_response else 0.0
    llf = float(res.llf) - jacobian
    ci = np.asarray(res.conf_int(1.0 - level))
    params = np.asarray(res.params)
    bse = np.asarray(res.bse)
    pvalues = np.asarray(res.pvalues)
    coefficients = {
        name: Coefficient(
            name,
            float(params[i]),
            float(bse[i]),
            float(ci[i, 0]),
            float(ci[i, 1]),
            float(pvalues[i]),
        )
        for i, name in enumerate(names)
    }
    draws = None
    boot_info = None
    if bootstrap:
        clusters = df[bootstrap_by].to_numpy() if bootstrap_by else None
        draws = bootstrap_coefficients(X, y, bootstrap, seed=seed, clusters=clusters)
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
        for i, name in enumerate(names):
            coefficients[name].boot_low = float(lo[i])
            coefficients[name].boot_high = float(hi[i])
        boot_info = {
            "resamples": int(bootstrap),
            "seed": int(seed),
            "by": bootstrap_by or "row",
            "failed": int(np.isnan(draws).any(axis=1).sum()),
        }
    logo_info = leave_one_group_out(df, form, logo, use) if logo else None
    return FitResult(
        form=form.name,
        intercept=use,
        metric=metric,
        group=group,
        coefficients=coefficients,
        n=n,
        df_model=float(res.df_model),
        df_resid=float(res.df_resid),
        r2=float(res.rsquared),
        adj_r2=float(res.rsquared_adj),
        r2_kind="centered" if res.k_constant else "uncentered",
        r2_centered=r2_c,
        adj_r2_centered=adj_c,
        r2_uncentered=r2_u,
        adj_r2_uncentered=adj_u,
        f=float(res.fvalue) if res.fvalue is not None else np.nan,
        f_pvalue=float(res.f_pvalue) if res.f_pvalue is not None else np.nan,
        llf=llf,
        aic=-2.0 * llf + 2.0 * k,
        bic=-2.0 * llf + np.log(n) * k,
        resid_std=float(np.sqrt(res.scale)),
        cov=np.asarray(res.cov_params()),
        level=level,
        draws=draws,
        bootstrap=boot_info,
        logo=logo_info,
    )


def _groups(df: pd.DataFrame, form: Form, by: Sequence[str] | str | None) -> tuple[list, list]:
    if isinstance(by, str):
        by = [by]
    by = list(by or [])
    unknown = [c for c in by if c not in df.columns]
    if unknown:
        raise LawError(
            f"cannot group by {', '.join(unknown)}: no such column; "
            f"columns: {', '.join(map(str, df.columns))}"
        )
    keys = ["metric", *[c for c in by if c != "metric"]]
    rows = df[df["metric"].isin(form.metrics)]
    if rows.empty:
        raise LawError(
            f"form {form.name} fits metric(s) {', '.join(form.metrics)}, but the table has only "
            f"{', '.join(sorted(df['metric'].unique()))}; pick another --form"
        )
    groups = [
        (dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), part)
        for key, part in rows.groupby(keys, sort=True)
    ]
    return keys, groups


def fit(
    df: pd.DataFrame,
    form: str | Form = "eq1",
    by: Sequence[str] | str | None = None,
    *,
    intercept: bool | None = None,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
    bootstrap_by: str | None = None,
    logo: str | None = "auto",
) -> Fits:
    """Fit ``form`` on a law table, one law per group of ``by`` columns (and of metric).

    Rows whose metric the form does not model are left out (eq1-3 and additive: loss and
    accuracy; runtime: runtime). ``intercept`` None uses the form's default (none for Eq. 1-3,
    as in the paper). ``bootstrap`` > 0 adds seeded percentile CIs from that many resamples.
    ``logo`` names a column for leave-one-group-out error; ``"auto"`` uses ``model`` when a
    group holds more than one model, None turns it off.

    Examples: Table 1 is ``fit(df, "eq1")``; Table 2 ``fit(df, "eq1", by="model")``; Table 3
    ``by="calibration"``; Table 6 ``by="dataset"``; Table 4 ``fit(df, "runtime", by="model")``.
    """
    form = get_form(form)
    df = validate(df)
    if df.empty:
        raise LawError("the law table has no rows; nothing to fit")
    keys, groups = _groups(df, form, by)
    if bootstrap_by and bootstrap_by not in df.columns:
        raise LawError(f"cannot bootstrap by {bootstrap_by!r}: no such column")
    if logo not in (None, "auto") and logo not in df.columns:
        raise LawError(f"cannot hold out by {logo!r}: no such column")
    results = []
    for group, part in groups:
        column = logo
        if logo == "auto":
            column = "model" if part["model"].nunique() > 1 else None
        if column and part[column].nunique() < 2:
            column = None
        results.append(
            fit_group(
                part,
                form,
                intercept=intercept,
                group=group,
                level=level,
                bootstrap=bootstrap,
                seed=seed,
                bootstrap_by=bootstrap_by,
                logo=column,
            )
        )
    return Fits(form.name, keys, results)


def compare(
    df: pd.DataFrame,
    forms: Sequence[str] = ("eq1", "eq2", "eq3", "additive"),
    by: Sequence[str] | str | None = None,
    *,
    logo: str | None = "auto",
) -> pd.DataFrame:
    """Compare forms per group by AIC/BIC (on the L scale), adj. R² and held-out error.

    One row per (group, form), with ``delta_aic``/``delta_bic`` relative to the best form of
    the group (0 = best; > 10 = essentially no support).
    """
    frames = []
    for name in forms:
        fits = fit(df, name, by, logo=logo)
        for f in fits:
            row = dict(f.group)
            row.update(
                form=f.form,
                k=len(f.coefficients),
                n=f.n,
                adj_r2=f.adj_r2,
                r2_kind=f.r2_kind,
                aic=f.aic,
                bic=f.bic,
                logo_mape=f.logo["mape"] if f.logo else None,
            )
            frames.append(row)
    table = pd.DataFrame(frames)
    keys = [
        c
        for c in table.columns
        if c not in ("form", "k", "n", "adj_r2", "r2_kind", "aic", "bic", "logo_mape")
    ]
    for ic in ("aic", "bic"):
        table[f"delta_{ic}"] = table[ic] - table.groupby(keys)[ic].transform("min")
    return table.sort_values([*keys, "aic"]).reset_index(drop=True)
