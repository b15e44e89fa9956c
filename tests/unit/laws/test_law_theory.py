"""Critical compression ratio and minimum RFT size (Theorem 3.1, Corollary 3.2, D.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from complaw.laws import Law, check_feasible, critical_ratio, get_law, min_rft
from complaw.laws.theory import InfeasibleLawError, SigmaOutOfRangeError

# Section 3.3's worked example: LLaMA-3-8B extrinsic, alpha 0.98, beta -1.18, gamma -0.14
WORKED = Law("worked", "eq1", "accuracy", {"alpha": 0.98, "beta": -1.18, "gamma": -0.14})
LOSS = Law("loss", "eq1", "loss", {"alpha": 0.63, "beta": 1.72, "gamma": 1.16})


def retention(law: Law, r: float, D: float) -> float:
    """L / L0^alpha under the law."""
    L0 = 0.5
    return float(law.predict(L0, r, D).L[0] / L0 ** law.coefficients["alpha"])


def test_worked_example():
    crit = critical_ratio(WORKED, 0.8)
    assert crit.threshold == pytest.approx(0.441, abs=5e-4)  # 2^beta
    assert crit.r_crit == pytest.approx(0.208, abs=5e-4)
    assert crit.regime == "critical"
    assert "0.208" in crit.message
    assert crit.ci is None  # the paper's numbers carry no uncertainty


def test_worked_example_with_the_shipped_table2_law():
    law = get_law("paper:llama-3-8b:extrinsic")
    assert critical_ratio(law, 0.8).r_crit == pytest.approx(0.208, abs=5e-4)


def test_accuracy_regimes():
    low = critical_ratio(WORKED, 0.4)  # sigma < 2^beta = 0.441
    assert low.regime == "any" and "any r" in low.message and low.r_crit >= 1
    at = critical_ratio(WORKED, 2**-1.18)
    assert at.regime == "any" and at.r_crit == pytest.approx(1.0)
    hi = critical_ratio(WORKED, 0.95)
    assert hi.regime == "critical" and 0 < hi.r_crit < critical_ratio(WORKED, 0.8).r_crit


def test_loss_regimes():
    crit = critical_ratio(LOSS, 1.5)
    assert crit.r_crit == pytest.approx(1.5 ** (1 / 1.72) - 1)
    assert crit.regime == "critical"
    assert critical_ratio(LOSS, 2**1.72 + 0.1).regime == "any"


@pytest.mark.parametrize("law,sigma", [(WORKED, 0.8), (WORKED, 0.95), (LOSS, 1.5), (LOSS, 2.5)])
def test_r_crit_separates_recoverable_ratios(law, sigma):
    """Just below r_crit a large D reaches sigma; at or above it no D does."""
    rc = critical_ratio(law, sigma).r_crit
    ok = (lambda v: v >= sigma) if law.metric == "accuracy" else (lambda v: v <= sigma)
    assert ok(retention(law, rc - 1e-3, 1e12))
    assert not ok(retention(law, rc + 1e-3, 1e12))
    assert math.isinf(min_rft(law, sigma, min(rc + 1e-3, 0.999)).D)
    assert math.isfinite(min_rft(law, sigma, rc - 1e-3).D)


@pytest.mark.parametrize(
    "law,sigma,r", [(WORKED, 0.8, 0.15), (WORKED, 0.9, 0.05), (LOSS, 1.5, 0.2), (LOSS, 3.0, 0.8)]
)
def test_min_rft_is_the_least_d(law, sigma, r):
    """Theorem 3.1: at D_min the retention equals sigma, and any smaller D misses it."""
    bound = min_rft(law, sigma, r)
    assert bound.regime == "finite" and bound.D > 0
    assert retention(law, r, bound.D) == pytest.approx(sigma, rel=1e-9)
    worse = retention(law, r, bound.D * 0.9)
    assert (worse < sigma) if law.metric == "accuracy" else (worse > sigma)
    # Eq. 6 directly: 1/(D+1) <= [sigma (1+r)^-beta]^(1/gamma) - 1
    b, g = law.coefficients["beta"], law.coefficients["gamma"]
    rhs = (sigma * (1 + r) ** -b) ** (1 / g) - 1
    assert 1 / (bound.D + 1) == pytest.approx(rhs, rel=1e-9)


def test_min_rft_plain_answers():
    none = min_rft(WORKED, 0.8, 0.05)
    assert none.D == 0 and none.regime == "none-needed"
    imp = min_rft(WORKED, 0.8, 0.5)
    assert math.isinf(imp.D) and imp.regime == "impossible" and "r_crit" in imp.message
    assert imp.to_dict()["D"] == "inf"


def test_feasibility_conditions_are_checked():
    wrong = Law("bad", "eq1", "accuracy", {"alpha": 1.0, "beta": -1.0, "gamma": 0.2})
    with pytest.raises(InfeasibleLawError, match="gamma = 0.2"):
        critical_ratio(wrong, 0.8)
    with pytest.raises(InfeasibleLawError, match="beta"):
        check_feasible(Law("b", "eq1", "loss", {"alpha": 1.0, "beta": -1.0, "gamma": 0.2}))
    check_feasible(WORKED)
    check_feasible(LOSS)


def test_sigma_ranges():
    for sigma in (0.0, 1.0, 1.3):
        with pytest.raises(SigmaOutOfRangeError):
            critical_ratio(WORKED, sigma)
    for sigma in (0.9, 1.0):
        with pytest.raises(SigmaOutOfRangeError):
            critical_ratio(LOSS, sigma)


def test_theory_needs_a_power_law_with_the_term():
    from complaw.errors import LawError

    with pytest.raises(LawError, match="no r term"):
        critical_ratio(Law("e3", "eq3", "accuracy", {"alpha": 1.0, "gamma": -0.2}), 0.8)
    with pytest.raises(LawError, match="power law"):
        critical_ratio(get_law("paper:runtime:llama-3-8b"), 0.8)


def test_uncertainty_propagates_from_covariance():
    cov = np.diag([1e-4, 4e-3, 1e-4])
    law = Law("f", "eq1", "accuracy", dict(WORKED.coefficients), cov=cov, df_resid=100)
    crit = critical_ratio(law, 0.8, n_draws=4000, seed=3)
    assert crit.ci[0] < crit.r_crit < crit.ci[1]
    # delta method: d r_crit / d beta = -ln(sigma) sigma^(1/beta) / beta^2
    b = -1.18
    sd = abs(-np.log(0.8) * 0.8 ** (1 / b) / b**2) * np.sqrt(4e-3)
    assert (crit.ci[1] - crit.ci[0]) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.1)
    bound = min_rft(law, 0.8, 0.15, n_draws=2000)
    assert bound.ci is not None and 0 < bound.p_reachable <= 1
    assert bound.ci[0] <= bound.D <= bound.ci[1]


def test_least_rft_when_rft_does_not_help():
    """The planner's solver: with gamma of the wrong sign, or no D term, D = 0 or nothing."""
    from complaw.laws.theory import least_rft

    for law in (
        Law("hurts", "eq1", "accuracy", {"alpha": 1.0, "beta": -1.0, "gamma": 0.1}),
        Law("no-d", "eq2", "accuracy", {"alpha": 1.0, "beta": -1.0}),
    ):
        at0 = law.predict(0.5, 0.1, 0).L[0]
        assert least_rft(law, 0.5, 0.1, at0 * 0.99, 1e6) == 0
        assert math.isinf(least_rft(law, 0.5, 0.1, at0 * 1.01, 1e6))


@pytest.mark.parametrize("law,sigma,r", [(WORKED, 0.8, 0.15), (LOSS, 1.5, 0.2)])
def test_least_rft_agrees_with_theorem_3_1(law, sigma, r):
    """The generic bisection against the paper's closed form (Eq. 6), and a budget below it."""
    from complaw.laws.theory import least_rft

    L0 = 0.5 if law.metric == "accuracy" else 2.0
    exact = min_rft(law, sigma, r).D
    target = sigma * L0 ** law.coefficients["alpha"]
    assert least_rft(law, L0, r, target, 1e9) == pytest.approx(exact, rel=1e-6)
    assert math.isinf(least_rft(law, L0, r, target, exact * 0.5))
