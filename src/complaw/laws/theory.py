"""The paper's theory on a power law: critical compression ratio and minimum RFT size.

With L = L0^alpha (1+r)^beta (1+1/(D+1))^gamma [times e^const for the intercept variant], the
retention relative to L0^alpha is R(r, D) = e^const (1+r)^beta (1+1/(D+1))^gamma.

* Accuracy (Theorem 3.1, Corollary 3.2): feasible when beta, gamma < 0; target R >= sigma,
  sigma in (0, 1). r_crit(sigma) = sigma^(1/beta) - 1. If sigma <= 2^beta (r_crit >= 1) any r
  in [0, 1) is recoverable; otherwise no r >= r_crit is, and every r < r_crit is with enough D.
* Loss (Appendix D.4): feasible when beta, gamma > 0; target R <= sigma, sigma > 1; the same
  r_crit, with "any r" when sigma >= 2^beta.
* Minimum D for (sigma, r): with t = sigma (1+r)^-beta e^-const and u = t^(1/gamma), the target
  holds iff 1 + 1/(D+1) <= u (both metrics), so D_min = 1/(u-1) - 1; D = 0 when u >= 2; no D
  when u <= 1 (r >= r_crit).

Uncertainty: with coefficient draws (bootstrap, or normal draws from a fit's covariance) the
same formulas run on every draw; draws that break the feasibility conditions are counted and
left out of the percentile interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from complaw.errors import LawError
from complaw.laws.forms import CONST
from complaw.laws.law import Law, law_inputs
from complaw.laws.metrics import get_metric


class InfeasibleLawError(LawError):
    """The law breaks the paper's feasibility conditions (signs of beta, gamma)."""


class SigmaOutOfRangeError(LawError):
    """The recovery threshold sigma lies outside the range the metric allows."""


@dataclass
class CriticalRatio:
    """r_crit(sigma) of a law, its regime and (with draws) a percentile CI."""

    law: str
    metric: str
    sigma: float
    r_crit: float
    threshold: float
    regime: str
    message: str
    ci: tuple[float, float] | None = None
    level: float = 0.95
    draws: int = 0
    draws_infeasible: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _json(self, threshold="threshold_2_beta")


@dataclass
class RFTBound:
    """The minimum RFT size D that reaches sigma at ratio r (inf when none does)."""

    law: str
    metric: str
    sigma: float
    r: float
    D: float
    regime: str
    message: str
    ci: tuple[float, float] | None = None
    level: float = 0.95
    p_reachable: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _json(self, inf="inf")


def _json(result: Any, inf: Any = None, **rename: str) -> dict[str, Any]:
    """A result's fields (renamed by ``rename``) for JSON: NaN as None, ±inf as ``inf``, a CI
    as a list."""
    def value(v: Any) -> Any:
        if isinstance(v, tuple):
            return [value(x) for x in v]
        if isinstance(v, float) and not np.isfinite(v):
            return None if np.isnan(v) else inf
        return float(v) if isinstance(v, float) else v

    return {rename.get(k, k): value(v) for k, v in asdict(result).items()}


def _power_law(law: Law, need: str) -> None:
    form = law.form_obj
    if not form.power_law:
        raise LawError(
            f"law {law.name!r} has form {form.name}; the theory needs a power law (eq1, eq2, eq3)"
        )
    if need not in law.coefficients:
        what = {"beta": "r", "gamma": "D"}[need]
        raise LawError(f"law {law.name!r} ({form.name}) has no {what} term, so {need} is unknown")


def check_feasible(law: Law) -> None:
    """Raise `InfeasibleLawError` unless beta (and gamma, when present) have the signs the
    paper's feasibility conditions ask: < 0 for accuracy, > 0 for loss."""
    sign = get_metric(law.metric).sign
    want = "< 0" if sign < 0 else "> 0"
    for name in ("beta", "gamma"):
        value = law.coefficients.get(name)
        if value is not None and not value * sign > 0:
            raise InfeasibleLawError(
                f"law {law.name!r} breaks the feasibility conditions for {law.metric}: "
                f"{name} = {value:.4g} but needs {want}; the theory does not apply "
                "(refit with more data, or use another law)"
            )


def _check_sigma(metric: str, sigma: float) -> None:
    if get_metric(metric).higher_is_better:
        if not 0 < sigma < 1:
            raise SigmaOutOfRangeError(
                f"sigma = {sigma} is outside (0, 1): for a law of {metric} (higher is better) "
                "sigma is the fraction of L0^alpha to keep (e.g. 0.8)")
    elif not sigma > 1:
        raise SigmaOutOfRangeError(
            f"sigma = {sigma} is not > 1: for a law of {metric} (lower is better) sigma bounds "
            "L / L0^alpha from above (e.g. 1.5)")


def _params(law: Law, draws: np.ndarray | None) -> dict[str, np.ndarray]:
    """Coefficient arrays (length 1 for the law itself, or one per draw); absent ones are 0."""
    names = law.coef_names
    if draws is None:
        return {n: np.array([law.coefficients.get(n, 0.0)]) for n in ("beta", "gamma", CONST)}
    return {
        n: (draws[:, names.index(n)] if n in names else np.zeros(len(draws)))
        for n in ("beta", "gamma", CONST)
    }


def _feasible_mask(p: dict[str, np.ndarray], law: Law, sign: float) -> np.ndarray:
    ok = np.ones(len(p["beta"]), dtype=bool)
    for name in ("beta", "gamma"):
        if name in law.coefficients:
            ok &= p[name] * sign > 0
    return ok


def _r_crit(p: dict[str, np.ndarray], sigma: float) -> np.ndarray:
    with np.errstate(over="ignore"):  # a draw with beta near 0 has r_crit = inf
        return (sigma * np.exp(-p[CONST])) ** (1.0 / p["beta"]) - 1.0


def _d_min(p: dict[str, np.ndarray], s: np.ndarray, r: np.ndarray, sign: float) -> np.ndarray:
    """Minimum D reaching retention s (relative to L0^alpha) at ratio r; inf when none does.

    With x = log(1 + 1/(D+1)) in (0, log 2] (decreasing in D), the target is a x <= b with
    a = sign gamma, b = sign (log s - const - beta log(1+r)). When RFT helps (a > 0) the least
    D has x = b/a (Eq. 6); otherwise D = 0 is best and either meets the target or nothing does.
    """
    log_t = np.log(s) - p[CONST] - p["beta"] * np.log1p(r)
    a, b = np.broadcast_arrays(sign * p["gamma"], sign * log_t)
    ln2 = np.log(2.0)
    out = np.where(a * ln2 <= b, 0.0, np.inf)  # what D = 0 gives
    helps = a > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(helps, b / np.where(helps, a, 1.0), 0.0)
    mid = helps & (x > 0) & (x < ln2)
    out[mid] = 1.0 / np.expm1(x[mid]) - 1.0
    return out


def _quantiles(x: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    lo, hi = np.quantile(x, [tail, 1 - tail], method="inverted_cdf")
    return float(lo), float(hi)


def critical_ratio(
    law: Law, sigma: float, *, level: float = 0.95, n_draws: int = 2000, seed: int = 0
) -> CriticalRatio:
    """r_crit(sigma) = sigma^(1/beta) - 1 with the regime in words (Corollary 3.2 / D.4).

    Checks the feasibility conditions and sigma's range first. With coefficient draws
    (fitted laws) adds a ``level`` percentile CI for r_crit.
    """
    _power_law(law, "beta")
    sign = get_metric(law.metric).sign
    check_feasible(law)
    _check_sigma(law.metric, sigma)
    p = _params(law, None)
    r_crit = float(_r_crit(p, sigma)[0])
    beta = law.coefficients["beta"]
    threshold = float(2.0**beta * np.exp(p[CONST][0]))
    rel = "<=" if sign < 0 else ">="
    tail = " with enough RFT" if "gamma" in law.coefficients else " (this law has no D term)"
    if r_crit >= 1.0:
        regime = "any"
        message = (
            f"sigma = {sigma:g} {rel} 2^beta = {threshold:.3g}: any r in [0, 1) is "
            f"recoverable{tail}"
        )
    elif r_crit <= 0.0:
        regime = "none"
        message = f"no r >= 0 is recoverable to sigma = {sigma:g} (even r = 0 misses it)"
    else:
        regime = "critical"
        message = (
            f"r_crit = {r_crit:.3g}: no r >= {r_crit:.3g} is recoverable to sigma = {sigma:g}; "
            f"every r < {r_crit:.3g} is recoverable{tail}"
        )
    result = CriticalRatio(
        law.name, law.metric, sigma, r_crit, threshold, regime, message, level=level
    )
    draws = law.coefficient_draws(n_draws, seed)
    if draws is not None:
        pd_ = _params(law, draws)
        ok = _feasible_mask(pd_, law, sign)
        values = _r_crit(pd_, sigma)[ok]
        result.draws = int(len(draws))
        result.draws_infeasible = int((~ok).sum())
        if len(values):
            result.ci = _quantiles(values, level)
    return result


def min_rft(
    law: Law,
    sigma: float,
    r: float,
    *,
    level: float = 0.95,
    n_draws: int = 2000,
    seed: int = 0,
) -> RFTBound:
    """The minimum RFT size D with L / L0^alpha >= sigma (accuracy) or <= sigma (loss) at
    ratio r (Theorem 3.1 and its loss variant). D is inf when no D reaches sigma."""
    _power_law(law, "beta" if "beta" in law.coefficients else "gamma")
    sign = get_metric(law.metric).sign
    check_feasible(law)
    _check_sigma(law.metric, sigma)
    r = float(law_inputs(1.0, r, 0.0)["r"][0])
    D = float(_d_min(_params(law, None), np.array([sigma]), np.array([r]), sign)[0])
    return _bound(law, sigma, r, D, sign, np.array([sigma]), level, n_draws, seed)


def least_rft(law: Law, L0: float, r: float, target: float, D_max: float,
              assured: float | None = None) -> float:
    """The least D in [0, D_max] at which ``law`` predicts L >= target (accuracy) or
    <= target (loss) at (L0, r); inf when even D_max misses it. With ``assured`` (a level,
    e.g. 0.95), the worse end of that prediction interval must meet the target, not the point
    prediction (a law without uncertainty uses its point prediction). For any form: bisection
    on log(1 + D) to a relative 1e-9, assuming L improves with D (every registered form does
    with the signs it is fitted with; a law where RFT hurts gets D = 0 or inf)."""
    sign = get_metric(law.metric).sign

    def meets(D: float) -> bool:
        pred = law.predict(L0, r, D, level=assured or 0.95)
        worse = pred.pi_high if sign > 0 else pred.pi_low
        value = pred.L if assured is None or worse is None else worse
        return bool(sign * (float(value[0]) - target) <= 0)

    if meets(0.0):
        return 0.0
    if D_max <= 0 or not meets(D_max):
        return math.inf
    lo, hi = 0.0, math.log1p(D_max)
    while hi - lo > 1e-9 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if meets(math.expm1(mid)) else (mid, hi)
    return math.expm1(hi)


def _bound(
    law: Law,
    sigma: float,
    r: float,
    D: float,
    sign: float,
    s: np.ndarray,
    level: float,
    n_draws: int,
    seed: int,
) -> RFTBound:
    if D == 0:
        regime, message = "none-needed", f"no RFT needed: D = 0 already reaches sigma at r = {r:g}"
    elif np.isfinite(D):
        regime, message = "finite", f"D >= {D:.4g} reaches sigma = {sigma:g} at r = {r:g}"
    else:
        regime = "impossible"
        message = f"impossible: no D reaches sigma = {sigma:g} at r = {r:g}"
        if "beta" in law.coefficients:
            rc = float(_r_crit(_params(law, None), sigma)[0])
            message += f" (r >= r_crit = {rc:.3g})"
    out = RFTBound(law.name, law.metric, sigma, r, D, regime, message, level=level)
    draws = law.coefficient_draws(n_draws, seed)
    if draws is not None:
        p = _params(law, draws)
        ok = _feasible_mask(p, law, sign)
        values = _d_min(p, s, np.array([r]), sign)[ok]
        if len(values):
            out.ci = _quantiles(values, level)
            out.p_reachable = float(np.isfinite(values).mean())
    return out
