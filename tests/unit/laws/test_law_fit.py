"""Fitting: statistics against a direct numpy computation, groups, bootstrap, held-out error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from law_synth import TRUE_ACC, TRUE_LOSS, make_table

from complaw.errors import LawError
from complaw.laws import compare, fit, get_form
from complaw.laws.fit import (
    NotIdentifiableError,
    bootstrap_coefficients,
    inputs_of,
    resample_weights,
)


def numpy_stats(X: np.ndarray, y: np.ndarray, centered_is_reported: bool) -> dict:
    """OLS statistics computed directly with numpy."""
    n, k = X.shape
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    rss = resid @ resid
    tss_u, tss_c = y @ y, ((y - y.mean()) ** 2).sum()
    r2_u, r2_c = 1 - rss / tss_u, 1 - rss / tss_c
    adj_u = 1 - n / (n - k) * (1 - r2_u)
    adj_c = 1 - (n - 1) / (n - k) * (1 - r2_c)
    if centered_is_reported:
        f = ((tss_c - rss) / (k - 1)) / (rss / (n - k))
    else:
        f = ((tss_u - rss) / k) / (rss / (n - k))
    sigma2 = rss / (n - k)
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ X)) * sigma2)
    llf = -n / 2 * (np.log(2 * np.pi * rss / n) + 1)
    return dict(beta=beta, se=se, adj_u=adj_u, adj_c=adj_c, r2_u=r2_u, r2_c=r2_c, f=f, llf=llf)


@pytest.mark.parametrize("intercept", [False, True])
def test_statistics_agree_with_numpy(acc_table, intercept):
    res = fit(acc_table, "eq1", intercept=intercept).only()
    form = get_form("eq1")
    data = inputs_of(acc_table)
    X = form.design(data, intercept)
    y = np.log(acc_table["L"].to_numpy())
    ref = numpy_stats(X, y, centered_is_reported=intercept)
    est = np.array([c.estimate for c in res.coefficients.values()])
    se = np.array([c.stderr for c in res.coefficients.values()])
    np.testing.assert_allclose(est, ref["beta"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(se, ref["se"], rtol=1e-8)
    assert res.adj_r2_uncentered == pytest.approx(ref["adj_u"], abs=1e-8)
    assert res.adj_r2_centered == pytest.approx(ref["adj_c"], abs=1e-8)
    assert res.r2_uncentered == pytest.approx(ref["r2_u"], abs=1e-8)
    assert res.r2_centered == pytest.approx(ref["r2_c"], abs=1e-8)
    assert res.f == pytest.approx(ref["f"], rel=1e-8)
    # statsmodels reports uncentered R² without a constant column, centered with one
    assert res.r2_kind == ("centered" if intercept else "uncentered")
    assert res.adj_r2 == pytest.approx(ref["adj_c"] if intercept else ref["adj_u"], abs=1e-8)
    # AIC/BIC on the L scale: log-space likelihood plus the Jacobian -sum log L
    k = X.shape[1]
    llf_L = ref["llf"] - np.log(acc_table["L"]).sum()
    assert res.aic == pytest.approx(-2 * llf_L + 2 * k, rel=1e-8)
    assert res.bic == pytest.approx(-2 * llf_L + np.log(len(y)) * k, rel=1e-8)
    assert res.n == len(acc_table) and res.df_resid == len(acc_table) - k


def test_ci_is_t_interval(acc_table):
    from scipy import stats

    res = fit(acc_table, "eq1").only()
    q = stats.t.ppf(0.975, res.df_resid)
    for c in res.coefficients.values():
        assert c.ci_low == pytest.approx(c.estimate - q * c.stderr, rel=1e-9)
        assert c.ci_high == pytest.approx(c.estimate + q * c.stderr, rel=1e-9)
    wide = fit(acc_table, "eq1", level=0.99).only()
    assert wide.coefficients["beta"].ci_low < res.coefficients["beta"].ci_low


def test_implicit_constant_is_reported_centered():
    """One model with a single L0: log L0 acts as a constant column, as in the paper's Table 2."""
    df = make_table(TRUE_ACC, seed=3)
    one = df[df["model"] == "m2"]
    res = fit(one, "eq1").only()
    assert res.r2_kind == "centered"
    assert res.adj_r2 == pytest.approx(res.adj_r2_centered, abs=1e-10)
    with pytest.raises(NotIdentifiableError, match="alpha is constant"):
        fit(one, "eq1", intercept=True)


def test_group_wise_fits_by_model_calibration_dataset(acc_table):
    by_model = fit(acc_table, "eq1", by=["model"])
    assert len(by_model) == 8
    assert {f.group["model"] for f in by_model} == {f"m{i}" for i in range(8)}
    assert all(f.group["metric"] == "accuracy" and f.n == 20 for f in by_model)
    assert by_model.get(model="m3").group["model"] == "m3"
    with pytest.raises(LawError):
        by_model.only()
    two = pd.concat(
        [
            acc_table,
            make_table(
                {"alpha": 1.1, "beta": -0.8, "gamma": -0.05}, seed=9, calibration="wikitext2"
            ),
        ]
    )
    by_cal = fit(two, "eq1", by="calibration")
    assert [f.group["calibration"] for f in by_cal] == ["none", "wikitext2"]
    assert by_cal.get(calibration="wikitext2").coefficients["beta"].estimate == pytest.approx(
        -0.8, abs=0.05
    )
    frame = by_cal.to_frame()
    assert {"calibration", "alpha", "alpha_se", "beta_lo", "adj_r2", "r2_kind"} <= set(frame)
    with pytest.raises(LawError, match="no such column"):
        fit(acc_table, "eq1", by="nope")


def test_metrics_are_always_separate(acc_table, loss_table):
    both = pd.concat([acc_table, loss_table])
    fits = fit(both, "eq1")
    assert [f.metric for f in fits] == ["accuracy", "loss"]
    loss = fits.get(metric="loss").estimates()
    assert loss["beta"] == pytest.approx(TRUE_LOSS["beta"], abs=0.1)
    with pytest.raises(LawError, match="runtime"):
        fit(both, "runtime")


def test_runtime_law_by_model():
    rng = np.random.default_rng(4)
    rows = []
    for i, (S0, beta) in enumerate([(20.0, -0.5), (80.0, -1.9)]):
        for r in np.linspace(0.1, 0.9, 9):
            S = 1.1 * S0 * (1 + r) ** beta * np.exp(rng.normal(0, 0.01))
            rows.append(
                dict(
                    model=f"m{i}",
                    method="p",
                    calibration="none",
                    dataset="x",
                    metric="runtime",
                    L=S,
                    L0=S0,
                    r=r,
                    D=0.0,
                )
            )
    fits = fit(pd.DataFrame(rows), "runtime", by="model")
    assert fits.get(model="m1").coefficients["beta"].estimate == pytest.approx(-1.9, abs=0.05)
    assert fits.get(model="m0").coefficients["const"].estimate == pytest.approx(
        np.log(1.1), abs=0.02
    )
    assert all(f.r2_kind == "centered" and f.intercept for f in fits)


def test_bootstrap_is_seeded_and_matches_explicit_resampling(acc_table):
    form = get_form("eq1")
    data = inputs_of(acc_table)
    X, y = form.design(data), form.response(acc_table["L"].to_numpy(), data)
    a = bootstrap_coefficients(X, y, resample_weights(len(y), 50, seed=7), chunk=20)
    b = bootstrap_coefficients(X, y, resample_weights(len(y), 50, seed=7), chunk=50)
    c = bootstrap_coefficients(X, y, resample_weights(len(y), 50, seed=8), chunk=50)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    idx = np.random.default_rng(7).integers(0, len(y), size=(50, len(y)))
    for i in (0, 17, 49):
        ref, *_ = np.linalg.lstsq(X[idx[i]], y[idx[i]], rcond=None)
        np.testing.assert_allclose(a[i], ref, atol=1e-10)


def test_bootstrap_ci_agrees_with_t_ci_under_the_model(acc_table):
    res = fit(acc_table, "eq1", bootstrap=400, seed=0).only()
    for c in res.coefficients.values():
        t_width = c.ci_high - c.ci_low
        b_width = c.boot_high - c.boot_low
        assert 0.7 < b_width / t_width < 1.3
        assert c.boot_low < c.estimate < c.boot_high
    assert res.bootstrap == {"resamples": 400, "seed": 0, "by": "row", "failed": 0}
    assert res.law().draws.shape == (400, 3)
    clustered = fit(acc_table, "eq1", bootstrap=100, bootstrap_by="model").only()
    assert clustered.bootstrap["by"] == "model"


def test_leave_one_model_out_equals_manual_refit(acc_table):
    from complaw.laws import heldout_error

    out = heldout_error(acc_table, "eq1", "model")
    assert set(out.predictions["fold"]) == set(range(8))
    held = (acc_table["model"] == "m5").to_numpy()
    form = get_form("eq1")
    rest = acc_table[~held]
    beta, *_ = np.linalg.lstsq(form.design(inputs_of(rest)), np.log(rest["L"]), rcond=None)
    pred = np.exp(form.design(inputs_of(acc_table[held])) @ beta)
    mine = out.predictions[out.predictions["index"].isin(np.flatnonzero(held))]
    np.testing.assert_allclose(mine["L_hat"], pred, rtol=1e-10)
    assert 0 < out.summary().mape_pct < 10
    assert fit(acc_table, "eq1", holdout="model").only().heldout["model"].n == len(acc_table)
    assert fit(acc_table, "eq1").only().heldout == {}


def test_aic_prefers_the_true_form(acc_table):
    table = compare(acc_table, holdout=None).frame()
    assert {"eq1", "eq2", "eq3", "additive", "retention"} == set(table["form"])
    best = table.sort_values("aic").iloc[0]
    assert best["form"] == "eq1" and best["delta_aic"] == 0
    assert (table[table["form"] != "eq1"]["delta_aic"] > 10).all()
    # data from Eq. 2 (no D effect): eq2 is preferred by BIC over eq1
    no_d = make_table({"alpha": 0.98, "beta": -1.18}, seed=5)
    t2 = compare(no_d, forms=("eq1", "eq2"), holdout=None).frame()
    assert t2.set_index("form").loc["eq2", "delta_bic"] == 0


def test_linear_and_curve_bootstraps_resample_the_same_rows(acc_table):
    """One seed, one set of resamples: a linear form's draws are the OLS fits of the very
    resamples a curve form's bootstrap refits (clustered ones too)."""
    form = get_form("eq1")
    data = inputs_of(acc_table)
    X, y = form.design(data), form.response(acc_table["L"].to_numpy(), data)
    for by in (None, "model"):
        clusters = acc_table[by].to_numpy() if by else None
        W = resample_weights(len(y), 30, 5, clusters)
        draws = fit(acc_table, "eq1", bootstrap=30, seed=5, bootstrap_by=by).only().draws
        np.testing.assert_allclose(draws, bootstrap_coefficients(X, y, W), atol=1e-12)
        for i in (0, 29):
            rows = np.repeat(np.arange(len(y)), W[i].astype(int))
            ref, *_ = np.linalg.lstsq(X[rows], y[rows], rcond=None)
            np.testing.assert_allclose(draws[i], ref, atol=1e-10)
    for m in set(clusters):  # the last, clustered draws resampled whole models
        assert (W[:, clusters == m] == W[:, clusters == m][:, :1]).all()


def test_fit_to_dict_is_json_ready(acc_table):
    import json

    d = fit(acc_table, "eq1", bootstrap=20).only().to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert set(back["coefficients"]) == {"alpha", "beta", "gamma"}
    assert {"estimate", "stderr", "ci", "bootstrap_ci"} <= set(back["coefficient_stats"]["beta"])
    assert back["coefficients"]["beta"] == back["coefficient_stats"]["beta"]["estimate"]
    assert back["feasible"] is False and back["heldout"] is None
    assert back["r2_kind"] == "uncentered"
