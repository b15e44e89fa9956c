"""Held-out error and the forms beyond the paper: recovery of known coefficients, feasibility,
splits that never test a row they were fitted on, and a form defined only here reaching every
consumer (compare, Table 1 of the report, predict)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from law_synth import grid
from typer.testing import CliRunner

from complaw.cli import app
from complaw.errors import LawError
from complaw.laws import FORMS, CurveForm, compare, fit, get_form, heldout_error, noise_floor
from complaw.laws.forms import Coef
from complaw.laws.holdout import folds

D_GRID = np.array([0.0, 256.0, 1024.0, 4096.0])
TRUTH = {
    "degradation": {"A": 12.0, "b": 1.3, "Dl": 800.0, "c": 0.4},
    "onset": {"A": 16.0, "k": 3.0, "h": 0.25, "Dl": 600.0, "c": 0.5},
    "plateau": {"A": 14.0, "k": 2.5, "h": 0.45, "Dl": 600.0, "c": 0.5},
    "retention": {"q": 0.5, "b": 2.0, "Dl": 500.0, "c": 0.6},
}


def drawn(form: str, coefs: dict[str, float], noise: float = 0.02, seed: int = 0,
          L0s=None) -> pd.DataFrame:
    """Rows from ``form`` with ``coefs`` on 8 L0 x 5 r x 4 D, times log-normal noise."""
    f = get_form(form)
    metric = f.metrics[0]
    if L0s is None:
        L0s = np.linspace(0.45, 0.75, 8) if metric == "accuracy" else np.linspace(2.0, 3.6, 8)
    df = grid(L0s, dsizes=D_GRID)
    data = {c: df[c].to_numpy(float) for c in ("L0", "r", "D")}
    rng = np.random.default_rng(seed)
    df["L"] = f.predict(coefs, data) * np.exp(rng.normal(0.0, noise, len(df)))
    return df.assign(method="prunenet", calibration="none", dataset="wikitext2", metric=metric)


@pytest.mark.parametrize("form", sorted(TRUTH))
def test_nonlinear_forms_give_back_their_coefficients(form):
    df = drawn(form, TRUTH[form])
    res = fit(df, form).only()
    assert res.feasible and res.n == len(df)
    for name, true in TRUTH[form].items():
        c = res.coefficients[name]
        assert c.ci_low < c.estimate < c.ci_high
        assert abs(c.estimate - true) <= 4 * c.stderr, (name, c.estimate, c.stderr, true)
    # the residual spread is the noise on the form's scale (log L; logit L for retention)
    f = get_form(form)
    truth = f.predict(TRUTH[form], {c: df[c].to_numpy(float) for c in ("L0", "r", "D")})
    noise = f.scale.to_scale(df["L"].to_numpy(float)) - f.scale.to_scale(truth)
    assert res.resid_std == pytest.approx(float(np.std(noise)), rel=0.25)


def test_a_coefficient_pinned_on_its_bound_is_flagged():
    """Recovery steeper than c's upper bound (5) allows pins c there: the fit says so, in its
    JSON too; a fit inside its bounds flags nothing."""
    steep = drawn("degradation", {"A": 12.0, "b": 1.3, "Dl": 2000.0, "c": 9.0}, noise=0.01)
    pinned = fit(steep, "degradation").only()
    assert pinned.coefficients["c"].estimate == pytest.approx(5.0) and pinned.at_bounds == ["c"]
    d = json.loads(json.dumps(pinned.to_dict()))
    assert d["at_bounds"] == ["c"] and d["coefficient_stats"]["c"]["at_bound"] is True
    assert d["coefficient_stats"]["A"]["at_bound"] is False
    assert fit(drawn("degradation", TRUTH["degradation"]), "degradation").only().at_bounds == []


@pytest.mark.parametrize("form,coefs", [
    ("eq1", {"alpha": 0.63, "beta": 1.72, "gamma": 1.16}),
    ("additive", {"alpha": 1.1, "beta": 4.0, "gamma": 0.5}),
])
def test_linear_forms_give_back_their_coefficients(form, coefs):
    df = drawn(form, coefs, noise=0.005 if form == "additive" else 0.02)
    df["metric"] = "loss"
    res = fit(df, form).only()
    for name, true in coefs.items():
        assert abs(res.coefficients[name].estimate - true) <= 4 * res.coefficients[name].stderr


def test_feasible_forms_give_exactly_l0_at_r_0():
    rng = np.random.default_rng(3)
    data = {"L0": rng.uniform(0.3, 4.0, 50), "r": np.zeros(50),
            "D": rng.choice([0.0, 1.0, 1e3, 1e9], 50)}
    feasible = [f for _, f in FORMS.items() if f.feasible]
    assert {"degradation", "onset", "retention"} <= {f.name for f in feasible}
    for f in feasible:
        for _ in range(5):
            coefs = {c.name: rng.uniform(max(c.bounds[0], -5), min(c.bounds[1], 50))
                     for c in f.coefs}
            np.testing.assert_array_equal(f.predict(coefs, data), data["L0"])
    # and the paper's Eq. 1 is not: 2^gamma L0^alpha at r = 0, D = 0
    eq1 = get_form("eq1").predict({"alpha": 0.9, "beta": 1.5, "gamma": 0.3}, dict(
        data, D=np.zeros(50)))
    assert not np.allclose(eq1, data["L0"])


def test_retention_stays_between_its_floor_and_l0():
    f = get_form("retention")
    data = {"L0": np.full(40, 0.6), "r": np.linspace(0, 0.99, 40), "D": np.zeros(40)}
    L = f.predict({"q": 0.4, "b": 3.0, "Dl": 100.0, "c": 0.5}, data)
    assert np.all(np.diff(L) <= 0) and L[0] == 0.6 and L.min() >= 0.4 * 0.6
    assert L[-1] == pytest.approx(0.6 * (1 - 0.6 * (1 - 0.01**3)))
    more = f.predict({"q": 0.4, "b": 3.0, "Dl": 100.0, "c": 0.5}, dict(data, D=np.full(40, 1e3)))
    assert np.all(more[1:] > L[1:]) and np.all(more <= 0.6)  # RFT recovers, never past L0


def with_baselines(df: pd.DataFrame) -> pd.DataFrame:
    base = df.drop_duplicates("model").assign(r=0.0, D=0.0)
    return pd.concat([df, base.assign(L=base["L0"])], ignore_index=True)


@pytest.mark.parametrize("split", ["r:0.5", "D", "model", "method", "kfold:5"])
def test_no_split_tests_a_row_it_was_fitted_on(split):
    df = with_baselines(drawn("degradation", TRUTH["degradation"]))
    df.loc[df["model"].isin(["m1", "m3"]), "method"] = "slicegpt"
    found = folds(df, split)
    assert found, split
    baselines = np.flatnonzero(df["r"].to_numpy() == 0)
    tested = np.concatenate([test for _, test in found])
    for train, test in found:
        assert np.intersect1d(train, test).size == 0
        assert np.isin(baselines, train).all() and not np.isin(baselines, test).any()
    assert len(np.unique(tested)) == len(tested)  # each row is predicted at most once
    # the fit never sees a test row: wrecking a fold's test rows changes none of its predictions
    before = heldout_error(df, "eq1", split).predictions
    assert sorted(before["index"]) == sorted(tested)
    for i, (_, test) in enumerate(found[:3]):
        wrecked = df.copy()
        wrecked.loc[test, "L"] *= 7.0
        after = heldout_error(wrecked, "eq1", split).predictions
        mine = before[before["fold"] == i]
        np.testing.assert_allclose(after[after["fold"] == i]["L_hat"], mine["L_hat"],
                                   rtol=1e-12)


def test_split_rules():
    df = drawn("degradation", TRUTH["degradation"])
    ((train, test),) = folds(df, "r:0.5")
    assert (df["r"].iloc[test] > 0.5).all() and (df["r"].iloc[train] <= 0.5).all()
    ((train, test),) = folds(df, "D")
    assert (df["D"].iloc[test] == 4096).all() and (df["D"].iloc[train] < 4096).all()
    assert len(folds(df, "model")) == 8 and folds(df, "method") == []  # one method: no fold
    assert [len(t) for _, t in folds(df, "kfold:4")] == [40] * 4
    assert folds(df, "kfold:4")[0][1].tolist() == folds(df, "kfold:4")[0][1].tolist()
    assert folds(df, "r:0.95") == []
    for bad, needle in (("r:x", "must be a number"), ("kfold:1", ">= 2"),
                        ("nope", "no column 'nope'"), ("D:3", "takes no argument"),
                        ("model:x", "K must be an integer"), ("usable:1", "> 1")):
        with pytest.raises(LawError, match=needle):
            folds(df, bad)


def test_heldout_summary_against_a_direct_computation():
    df = drawn("onset", TRUTH["onset"])
    out = heldout_error(df, "onset", "r:0.5")
    train = df[df["r"] <= 0.5]
    law = fit(train, "onset").only().law()
    test = df[df["r"] > 0.5]
    pred = law.predict(test["L0"], test["r"], test["D"])
    L, L0 = test["L"].to_numpy(), test["L0"].to_numpy()
    s = out.summary()
    assert s.n == len(test) == 64
    assert s.mape_pct == pytest.approx(100 * np.mean(np.abs(pred.L - L) / L), rel=1e-6)
    assert s.degradation_mape_pct == pytest.approx(
        100 * np.mean(np.abs((pred.L - L0) - (L - L0)) / np.abs(L - L0)), rel=1e-6)
    inside = (pred.pi_low <= L) & (L <= pred.pi_high)
    assert s.coverage == pytest.approx(inside.mean())
    assert s.coverage >= 0.8  # a 95% interval of the true form


def test_noise_floor_is_one_seed_against_the_others():
    a = drawn("degradation", TRUTH["degradation"], seed=1).assign(seed=0)
    b = drawn("degradation", TRUTH["degradation"], seed=2).assign(seed=1)
    floor = noise_floor(pd.concat([a, b]))
    direct = np.abs(a["L"].to_numpy() - b["L"].to_numpy())
    expected = np.concatenate([direct / b["L"].to_numpy(), direct / a["L"].to_numpy()]).mean()
    assert floor == {"seeds": 2, "n": 2 * len(a),
                     "mape_pct": pytest.approx(100 * expected / np.sqrt(2))}
    assert noise_floor(a) is None


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_noise_floor_is_the_true_means_error(seeds):
    """Normal seeds of s.d. 4 % around a known mean: the floor is the expected |error| of that
    mean, sqrt(2/pi) 4 %, whatever the number of seeds."""
    rng = np.random.default_rng(seeds)
    cells = drawn("degradation", TRUTH["degradation"], seed=0).assign(L=10.0)
    cells = pd.concat([cells.assign(dataset=f"d{i}") for i in range(200)], ignore_index=True)
    rows = pd.concat([cells.assign(seed=s, L=10.0 * (1 + 0.04 * rng.standard_normal(len(cells))))
                      for s in range(seeds)], ignore_index=True)
    floor = noise_floor(rows)
    assert floor["n"] == seeds * len(cells)
    assert floor["mape_pct"] == pytest.approx(100 * np.sqrt(2 / np.pi) * 0.04, rel=0.05)


def test_feasible_form_beats_eq1_out_of_sample_when_the_data_are_feasible():
    df = drawn("onset", TRUTH["onset"])
    ranked = compare(df, holdout="r:0.5").frame()
    assert ranked.iloc[0]["form"] == "onset" and ranked.iloc[0]["rank"] == 1
    eq1 = ranked.set_index("form").loc["eq1"]
    assert ranked.iloc[0]["mape_pct"] < eq1["mape_pct"]


@pytest.fixture
def test_form():
    """A form that exists only in this test: L = L0 (1 + k r)."""
    form = CurveForm(
        "only-in-test", "L = L0 (1 + k r)", "a test form", "L = L0 (1 + {k} r)",
        metrics=("loss",), feasible=True,
        parameters=(Coef("k", "κ", (0.0, 100.0), (1.0,)),),
        fn=lambda p, d: np.asarray(d["L0"]) * (1 + np.asarray(p["k"]) * np.asarray(d["r"])),
    )
    FORMS.add(form.name, form)
    yield form
    FORMS._items.pop(form.name)


def test_a_form_defined_in_a_test_reaches_compare_and_predict(test_form, tmp_path):
    df = drawn("degradation", TRUTH["degradation"])
    path = tmp_path / "rows.csv"
    df.to_csv(path, index=False)
    runner = CliRunner()
    out = runner.invoke(app, ["fit", str(path), "--compare", "--json"])
    assert out.exit_code == 0, out.output
    mine = next(f for f in json.loads(out.stdout) if f["form"] == test_form.name)
    assert set(mine["coefficients"]) == {"k"} and mine["feasible"] is True
    assert mine["heldout"]["split"] == "r:0.5" and mine["heldout"]["n"] > 0
    out = runner.invoke(app, ["predict", "--records", str(path), "--form", test_form.name,
                              "--L0", "2", "--r", "0.5", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    k = mine["coefficients"]["k"]
    assert got["predictions"][0]["L"] == pytest.approx(2 * (1 + 0.5 * k), rel=1e-6)
    assert got["formula"].startswith("L = L0 (1 + ")


def test_a_form_defined_in_a_test_reaches_table_1(test_form, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "report"))
    from report_synth import make_study

    from complaw.report import build_report

    study = make_study(tmp_path / "s", methods=("prunenet",), zeroshot=False, speed=False,
                       runner_files=False)
    report = build_report(study)
    t1 = pd.read_csv(report.index.parent / "tables" / "table1.csv")
    row = t1[t1["form"] == test_form.name].iloc[0]
    assert row["k"] > 0 and "κ [95% CI]" in (report.index.parent / "index.md").read_text()
    held = pd.read_csv(report.index.parent / "tables" / "heldout.csv")
    assert test_form.name in set(held["form"])


def test_curve_bootstrap_matches_scipy_refits_and_the_t_intervals():
    """The vectorised bootstrap refits against scipy's least_squares on the same resamples,
    and its percentile intervals against the Gauss-Newton t intervals under the model."""
    from scipy.optimize import least_squares

    from complaw.laws.fit import CurveFitter, inputs_of, resample_weights

    df = drawn("onset", TRUTH["onset"], seed=4)
    res = fit(df, "onset", bootstrap=200, seed=3).only()
    assert res.bootstrap["resamples"] == 200 and res.law().draws.shape == (200, 5)
    form = get_form("onset")
    fitter = CurveFitter(form, inputs_of(df), df["L"].to_numpy())
    theta = np.array([res.coefficients[n].estimate for n in form.coef_names()])
    weights = resample_weights(len(df), 200, 3)
    for i in (0, 57, 199):
        ref = least_squares(fitter.residuals, fitter.internal(theta), args=(weights[i],),
                            bounds=(fitter.lo, fitter.hi), loss="soft_l1", f_scale=0.1,
                            xtol=1e-12, ftol=1e-12, gtol=1e-12)
        np.testing.assert_allclose(res.law().draws[i], fitter.natural(ref.x), rtol=0.02)
    for c in res.coefficients.values():
        ratio = (c.boot_high - c.boot_low) / (c.ci_high - c.ci_low)
        assert 0.6 < ratio < 1.6, (c.name, ratio)


def test_accuracy_intervals_of_the_retention_law_stay_inside_zero_one():
    """Retention lives on the logit scale: its intervals stay in [0, 1] by construction, even far
    out of the data and with a covariance inflated a million times."""
    res = fit(drawn("retention", TRUTH["retention"], noise=0.08), "retention").only()
    law = res.law()
    law.cov = np.asarray(law.cov) * 1e6
    pred = law.predict(0.7, np.array([0.0, 0.5, 0.99]), 0.0)
    for bound in (pred.low, pred.high, pred.pi_low, pred.pi_high):
        assert np.all((0.0 <= bound) & (bound <= 1.0))  # expit saturates, never beyond
