"""Synthetic recovery: known law + log-normal noise on a paper-like grid (8 L0 x 5 r x 4 D)."""

from __future__ import annotations

import numpy as np
import pytest
from law_synth import TRUE_ACC, TRUE_LOSS, make_table
from scipy import stats

from complaw.laws import critical_ratio, fit, get_form
from complaw.laws.fit import inputs_of, ols


@pytest.mark.parametrize("truth,metric", [(TRUE_ACC, "accuracy"), (TRUE_LOSS, "loss")])
def test_fitted_exponents_cover_the_truth(truth, metric):
    df = make_table(truth, metric, noise=0.05, seed=0)
    assert len(df) == 160
    res = fit(df, "eq1").only()
    for name, value in truth.items():
        c = res.coefficients[name]
        assert c.ci_low <= value <= c.ci_high, (name, c)


def test_ci_coverage_over_200_seeded_repetitions():
    """The 95% t-CI covers each true exponent in 90-99% of 200 repetitions."""
    base = make_table(TRUE_ACC, noise=0.0, seed=0)
    form = get_form("eq1")
    data = inputs_of(base)
    X = form.design(data)
    y_true = form.response(base["L"].to_numpy(), data)
    truth = np.array([TRUE_ACC[c] for c in form.coef_names()])
    rng = np.random.default_rng(2024)
    hits = np.zeros(3)
    reps = 200
    q = None
    for rep in range(reps):
        y = y_true + rng.normal(0.0, 0.05, len(y_true))
        beta, cov, _ = ols(X, y)
        se = np.sqrt(np.diag(cov))
        if q is None:
            q = stats.t.ppf(0.975, len(y) - len(beta))
        if rep == 0:  # the estimator fit uses
            sm = fit(base.assign(L=np.exp(y)), "eq1").only()
            np.testing.assert_allclose(beta, list(sm.estimates().values()), atol=1e-10)
            np.testing.assert_allclose(se, [c.stderr for c in sm.coefficients.values()], rtol=1e-8)
        hits += np.abs(beta - truth) <= q * se
    coverage = hits / reps
    assert np.all((coverage >= 0.90) & (coverage <= 0.99)), coverage


def test_bootstrap_r_crit_ci_covers_the_true_value():
    df = make_table(TRUE_ACC, noise=0.03, seed=21)
    law = fit(df, "eq1", bootstrap=300, seed=1).only().law()
    crit = critical_ratio(law, 0.8)
    true_r = 0.8 ** (1 / TRUE_ACC["beta"]) - 1
    assert crit.ci[0] <= true_r <= crit.ci[1]
    assert crit.draws == 300 and crit.draws_infeasible == 0
    assert crit.ci[1] - crit.ci[0] < 0.05


def test_rows_of_one_rft_size_claim_no_recovery():
    """Rows all at D = 0 cannot identify D_l and c: the fit holds c at 0 (RFT recovers
    nothing), recovers the rest exactly, and predicts the same loss at any D."""
    import pandas as pd

    r = np.tile(np.linspace(0.1, 0.9, 9), 3)
    L0 = np.repeat([2.0, 2.5, 3.0], 9)
    df = pd.DataFrame({"model": np.repeat(["a", "b", "c"], 9), "method": "m", "calibration": "none",
                       "dataset": "d",
                       "metric": "loss", "L": L0 + 4.0 * r**1.7, "L0": L0, "r": r, "D": 0})
    res = fit(df, "degradation").only()
    c = res.coefficients
    assert c["c"].unidentified and c["Dl"].unidentified and not c["c"].at_bound
    assert (c["c"].estimate, c["c"].stderr, c["c"].ci_low, c["c"].ci_high) == (0, 0, 0, 0)
    assert c["A"].estimate == pytest.approx(4.0, rel=1e-4)
    assert c["b"].estimate == pytest.approx(1.7, rel=1e-4)
    assert not c["A"].unidentified and res.df_resid == 27 - 2 and c["c"].to_dict()["unidentified"]
    law = res.law()
    at0, at4k = (float(law.predict(2.0, 0.5, D).L[0]) for D in (0, 4096))
    assert at4k == pytest.approx(at0) == pytest.approx(2.0 + 4.0 * 0.5**1.7, rel=1e-4)
    # with a second RFT size the same coefficients are fitted
    more = pd.concat([df, df.assign(D=1000, L=df["L0"] + 4.0 * df["r"] ** 1.7 * 0.5)])
    moved = fit(more, "degradation").only().coefficients
    assert not moved["c"].unidentified and moved["c"].estimate > 0
