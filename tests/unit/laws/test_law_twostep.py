"""Task loss and the two-step accuracy law: (r, D) -> task loss (a loss form) -> accuracy (a
per-task link), recovered from synthetic tables drawn from known laws; the link against scipy's
curve_fit; bounded intervals; accuracy errors in points and the measurement noise floor."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from complaw.errors import LawError
from complaw.laws import FORMS, Law, compare, fit, fit_link, get_form, heldout_error, two_step
from complaw.laws.forms import Coef
from complaw.laws.link import MissingChanceError, SigmoidLink, TooFewAccuraciesError, get_link
from complaw.laws.twostep import NoTaskLossError

STEP = {"A": 2.0, "b": 1.5, "Dl": 800.0, "c": 0.4}
TASKS = {"arc_easy": {"chance": 0.25, "slope": 3.0, "mid": 1.6, "top": 0.85},
         "piqa": {"chance": 0.5, "slope": 4.0, "mid": 1.2, "top": 0.82}}
RATIOS = np.round(np.arange(0.1, 0.95, 0.1), 2)
DSIZES = np.array([0.0, 256.0, 1024.0, 4096.0])
MEAN = "zeroshot(arc_easy,piqa)"


def sigmoid(p: dict[str, float], loss):
    return p["chance"] + (p["top"] - p["chance"]) * expit(-p["slope"] * (loss - p["mid"]))


def table(loss_noise: float = 0.0, acc_noise: float = 0.0, seed: int = 0,
          models: int = 4) -> pd.DataFrame:
    """Task-loss rows from the degradation law STEP and accuracy rows from each task's sigmoid
    link of them (2 tasks x ``models`` models x 9 r x 4 D), with log-normal noise on the task
    loss and normal noise of s.d. ``acc_noise`` on the accuracy (its ``L_se``); plus the task
    mean's accuracy rows, which have no task loss."""
    rng = np.random.default_rng(seed)
    rows = []
    for task, p in TASKS.items():
        for m, loss0 in enumerate(np.linspace(0.8, 1.4, models)):
            for r in RATIOS:
                for d in DSIZES:
                    loss = loss0 + STEP["A"] * r ** STEP["b"] * (1 + d / STEP["Dl"]) ** -STEP["c"]
                    loss *= math.exp(rng.normal(0.0, loss_noise)) if loss_noise else 1.0
                    acc = sigmoid(p, loss) + (rng.normal(0.0, acc_noise) if acc_noise else 0.0)
                    common = {"model": f"m{m}", "method": "prunenet", "calibration": "none",
                              "dataset": task, "r": r, "D": d, "seed": 0, "chance": p["chance"]}
                    # the task loss may come from another record (a task-loss-only evaluation)
                    rows.append({**common, "metric": "task_loss", "L": loss, "L0": loss0,
                                 "L_se": 0.01, "experiment": f"loss-m{m}-{r}-{d}"})
                    rows.append({**common, "metric": "accuracy", "L": acc, "L0": sigmoid(p, loss0),
                                 "L_se": acc_noise or 0.004, "experiment": f"m{m}-{r}-{d}"})
    df = pd.DataFrame(rows)
    acc = df[df["metric"] == "accuracy"]
    mean = acc.groupby(["model", "r", "D"], as_index=False)[["L", "L0"]].mean()
    mean = mean.assign(method="prunenet", calibration="none", dataset=MEAN, metric="accuracy")
    return pd.concat([df, mean], ignore_index=True)


@pytest.fixture(scope="module")
def exact() -> pd.DataFrame:
    return table()


@pytest.fixture(scope="module")
def exact_fits(exact):
    return fit(exact, "two-step", holdout="r:0.5")


def task(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df[df["dataset"] == name]


def truth(name: str, metric: str = "accuracy") -> Law:
    return Law("truth", "two-step", metric, {**STEP, **TASKS[name]})


def test_pairs_are_measured_on_the_same_model(exact):
    from complaw.laws.twostep import pairs

    acc, loss = get_form("two-step").split_rows(task(exact, "piqa"))
    ell, a = pairs(acc, loss)
    assert len(ell) == len(acc) + 4  # every compressed model, and the 4 base models
    np.testing.assert_allclose(a, sigmoid(TASKS["piqa"], ell), rtol=1e-12)
    # a second seed at the same conditions pairs with its own seed only
    two = pd.concat([task(exact, "piqa"), task(exact, "piqa").assign(seed=1)])
    ell, a = pairs(*get_form("two-step").split_rows(two))
    assert len(ell) == 2 * len(acc) + 4


def test_registered_and_declared():
    form = get_form("two-step")
    assert form.feasible and form.metrics == ("accuracy",) and form.companion == "task_loss"
    assert form.by == ("dataset",) and form.scale.name == "logit"
    assert form.coef_names() == ["A", "b", "Dl", "c", "slope", "mid", "top", "chance"]
    assert {"eq1", "eq2", "eq3", "additive", "degradation", "onset"} <= {
        name for name, f in FORMS.items() if f.models("task_loss")}
    assert not get_form("retention").models("task_loss")
    clash = SigmoidLink("clash", "", "", parameters=(Coef("A", "A"),))
    with pytest.raises(LawError, match="both have coefficient"):
        two_step("clash", link=clash)


def test_two_step_recovers_an_exact_grid(exact, exact_fits):
    """Task losses from a known degradation law, accuracies from a known sigmoid link of them,
    no noise: every coefficient, and every held-out prediction, to ~1e-6."""
    assert sorted(f.group["dataset"] for f in exact_fits) == ["arc_easy", "piqa"]  # not MEAN
    for f in exact_fits:
        name = f.group["dataset"]
        assert f.n == len(task(exact, name)) // 2 and f.feasible
        for coef, value in {**STEP, **TASKS[name]}.items():
            assert f.coefficients[coef].estimate == pytest.approx(value, rel=1e-6), coef
        assert f.coefficients["chance"].stderr == 0.0
        h = f.heldout["r:0.5"]
        assert h.n == 4 * 4 * 4 and h.mape_pct < 1e-4 and h.abs_error_points < 1e-4
        p = heldout_error(task(exact, name), "two-step", "r:0.5").predictions
        expected = truth(name).predict(p["L0"], p["r"], p["D"]).L
        np.testing.assert_allclose(p["L_hat"], expected, rtol=1e-6)
        np.testing.assert_allclose(p["L_hat"], p["L"], rtol=1e-6)


def test_at_r_0_the_law_gives_l0_for_every_d(exact_fits):
    law = exact_fits.get(dataset="piqa").law()
    L0 = np.array([0.55, 0.6, 0.7, 0.81, 0.9, 0.99])  # 0.9, 0.99: above the fitted top
    for D in (0.0, 10.0, 1e3, 1e6):
        np.testing.assert_array_equal(law.predict(L0, 0.0, D).L, L0)
    # and below: falls with r, recovers with D, never above L0
    drop = law.predict(0.7, [0.2, 0.5, 0.8]).L
    assert np.all(np.diff(drop) < 0) and np.all(drop < 0.7)
    assert np.all(law.predict(0.7, [0.2, 0.5, 0.8], 4096).L > drop)


def test_intervals_stay_inside_0_1_even_when_wild(exact):
    """Few rows with heavy noise: the coefficients are barely known; at r = 0.99 the law's
    intervals still lie in [0, 1], by the logit scale (not by clipping), and are wide."""
    rough = table(loss_noise=0.3, acc_noise=0.08, seed=5, models=2)
    rough = rough[rough["r"].isin([0.1, 0.3, 0.5]) & rough["D"].isin([0.0, 4096.0])]
    law = fit(rough, "two-step").get(dataset="arc_easy").law()
    assert np.sqrt(np.diag(law.cov))[:4].max() > 1.0  # the step's coefficients are vague
    L0 = np.array([0.3, 0.55, 0.8, 0.99])
    for r, D in ((0.99, 0.0), (0.99, 1e6), (0.5, 100.0)):
        p = law.predict(L0, r, D)
        for bound in (p.low, p.high, p.pi_low, p.pi_high, p.L):
            assert np.all((0.0 <= bound) & (bound <= 1.0)), (r, D, bound)
        assert np.all(p.pi_low <= p.low) and np.all(p.low <= p.L) and np.all(p.L <= p.high)
        assert np.all(p.high <= p.pi_high)
    # a covariance no fit would give: intervals still inside, and they open up towards (0, 1)
    wild = Law("wild", "two-step", "accuracy", {**STEP, **TASKS["piqa"]},
               cov=np.diag([100.0, 10.0, 1e8, 5.0, 100.0, 10.0, 1.0, 0.0]), df_resid=3,
               resid_std=3.0)
    p = wild.predict(L0, 0.99, 0.0)
    assert np.all((0.0 <= p.pi_low) & (p.pi_high <= 1.0)) and np.all(p.pi_high - p.pi_low > 0.5)


def test_the_link_fit_is_scipys_curve_fit():
    """The link fitted on noisy pairs against an independent scipy.optimize.curve_fit on the
    same logit accuracies: estimates and standard errors."""
    from scipy.optimize import curve_fit

    p = TASKS["arc_easy"]
    rng = np.random.default_rng(1)
    loss = rng.uniform(0.6, 3.0, 60)
    acc = sigmoid(p, loss) + rng.normal(0.0, 0.01, 60)
    got = fit_link("sigmoid", loss, acc, p["chance"])

    def model(x, slope, mid, top):
        return logit(sigmoid({"chance": p["chance"], "slope": slope, "mid": mid, "top": top}, x))

    ref, cov = curve_fit(model, loss, logit(acc), p0=[2.0, 1.5, 0.8],
                         bounds=([1e-6, -np.inf, p["chance"]], [1e4, np.inf, 1.0]))
    for i, name in enumerate(("slope", "mid", "top")):
        c = got.coefficients[name]
        assert c.estimate == pytest.approx(ref[i], rel=1e-5), name
        assert c.stderr == pytest.approx(math.sqrt(cov[i, i]), rel=1e-3), name
        assert abs(c.estimate - p[name]) < 4 * c.stderr
    assert got.df_resid == 57 and got.resid_std == pytest.approx(
        math.sqrt(np.sum(got.resid**2) / 57), rel=1e-12)
    np.testing.assert_allclose(got.resid, model(loss, *ref) - logit(acc), atol=1e-6)
    # the inverse: the task loss of an accuracy, clipped strictly inside (chance, top)
    link, est = get_link("sigmoid"), got.estimates()
    np.testing.assert_allclose(link.predict(est, link.inverse(est, [0.4, 0.6])), [0.4, 0.6])
    outside = link.predict(est, link.inverse(est, [0.1, 0.99]))
    assert np.all((p["chance"] < outside) & (outside < est["top"]))


def test_the_links_intervals_cover_the_truth():
    p = TASKS["piqa"]
    rng = np.random.default_rng(2)
    hits = []
    for _ in range(50):
        loss = rng.uniform(0.5, 2.5, 30)
        acc = expit(logit(sigmoid(p, loss)) + rng.normal(0.0, 0.05, 30))
        c = fit_link("sigmoid", loss, acc, p["chance"]).coefficients
        hits.append([c[n].ci_low <= p[n] <= c[n].ci_high for n in ("slope", "mid", "top")])
    assert np.all(np.mean(hits, axis=0) >= 0.86), np.mean(hits, axis=0)  # 95%, 50 draws


def test_prediction_intervals_cover_noisy_heldout_accuracies():
    """Noise on both steps: the 95% prediction interval (with the law's own logit residuals)
    holds about 95% of the held-out accuracies; the noise floor is about the law's error."""
    df = table(loss_noise=0.03, acc_noise=0.01, seed=3)
    h = heldout_error(task(df, "arc_easy"), "two-step", "kfold:5").summary()
    assert h.n == 4 * 9 * 4 and 0.85 <= h.coverage <= 1.0
    assert h.noise_floor_points == pytest.approx(100 * math.sqrt(2 / math.pi) * 0.01)
    assert h.noise_floor_points < h.abs_error_points < 4 * h.noise_floor_points


def test_abs_error_points_and_noise_floor_against_a_direct_computation():
    df = task(table(acc_noise=0.02, seed=4), "piqa")
    for form in ("two-step", "eq2"):
        acc = df[df["metric"] == "accuracy"]
        out = heldout_error(df if form == "two-step" else acc, form, "r:0.5")
        s = out.summary()
        test = acc[acc["r"] > 0.5]
        train = pd.concat([acc[acc["r"] <= 0.5], df[(df["metric"] == "task_loss")
                                                   & (df["r"] <= 0.5)]])
        law = fit(train, form).get(metric="accuracy").law()
        hat = law.predict(test["L0"], test["r"], test["D"]).L
        assert s.abs_error_points == pytest.approx(
            100 * np.mean(np.abs(hat - test["L"].to_numpy())), rel=1e-6)
        assert s.noise_floor_points == pytest.approx(
            100 * math.sqrt(2 / math.pi) * test["L_se"].mean(), rel=1e-12)
        assert "noise_floor_pct" not in s.to_dict() and s.noise_floor_pct is None
        assert list(out.predictions["dataset"].unique()) == ["piqa"]
    # sqrt(2/pi) sigma is the mean |error| of a normal measurement with s.d. sigma
    errors = np.random.default_rng(0).normal(0.0, 0.02, 200_000)
    assert 100 * np.mean(np.abs(errors)) == pytest.approx(
        100 * math.sqrt(2 / math.pi) * 0.02, rel=0.01)
    # a loss with L_se: the floor in % of L; accuracy without L_se: None; loss without: absent
    losses = df[df["metric"] == "task_loss"]
    s = heldout_error(losses, "eq1", "r:0.5").summary()
    test = losses[losses["r"] > 0.5]
    assert s.noise_floor_pct == pytest.approx(
        100 * math.sqrt(2 / math.pi) * np.mean(test["L_se"] / test["L"]))
    assert "abs_error_points" not in s.to_dict()
    s = heldout_error(df[df["metric"] == "accuracy"].drop(columns="L_se"), "eq2", "r:0.5")
    assert s.summary().noise_floor_points is None
    assert s.summary().abs_error_points > 0
    assert set(heldout_error(losses.drop(columns="L_se"), "eq1", "r:0.5").summary().to_dict()) == {
        "split", "n", "mape_pct", "degradation_mape_pct", "coverage", "by_level"}


def test_heldout_never_fits_the_task_loss_of_a_heldout_condition(exact):
    """Wrecking the task loss of the held-out rows (r > 0.5) changes no prediction; wrecking
    one the fit sees does."""
    df = task(exact, "arc_easy").reset_index(drop=True)
    before = heldout_error(df, "two-step", "r:0.5").predictions
    assert set(before["r"]) == {0.6, 0.7, 0.8, 0.9}
    wrecked = df.copy()
    at = (wrecked["metric"] == "task_loss") & (wrecked["r"] > 0.5)
    wrecked.loc[at, "L"] *= 3.0
    after = heldout_error(wrecked, "two-step", "r:0.5").predictions
    np.testing.assert_allclose(after["L_hat"], before["L_hat"], rtol=1e-9)
    seen = df.copy()
    seen.loc[(seen["metric"] == "task_loss") & (seen["r"] == 0.5), "L"] *= 1.5
    moved = heldout_error(seen, "two-step", "r:0.5").predictions
    assert not np.allclose(moved["L_hat"], before["L_hat"], rtol=1e-3)


def test_bad_input_says_what_to_do(exact):
    few = [0.3, 0.4, 0.5, 0.5, 0.4]
    with pytest.raises(TooFewAccuraciesError, match="3 distinct accuracies.*measure accuracy "
                                                     "at more ratios"):
        fit_link("sigmoid", [1.0, 1.2, 1.4, 1.6, 1.8], few, 0.25)
    with pytest.raises(MissingChanceError, match="chance accuracy"):
        fit_link("sigmoid", [1.0, 1.2, 1.4, 1.6, 1.8], [0.3, 0.4, 0.5, 0.6, 0.7], None)
    with pytest.raises(MissingChanceError, match="column chance"):
        fit(exact.drop(columns="chance"), "two-step")
    with pytest.raises(MissingChanceError):
        fit(exact.assign(chance=np.nan), "two-step")
    accuracy_only = exact[exact["metric"] == "accuracy"]
    with pytest.raises(NoTaskLossError, match="no task_loss rows for .*predate task loss: "
                                              "re-run the zero-shot evaluation"):
        fit(accuracy_only, "two-step")
    coarse = task(exact, "piqa").copy()
    at = coarse["metric"] == "accuracy"
    coarse.loc[at, "L"] = np.resize([0.6, 0.5, 0.4], at.sum())
    coarse.loc[at, "L0"] = 0.6
    with pytest.raises(TooFewAccuraciesError, match="piqa has 3 distinct accuracies"):
        fit(coarse, "two-step")
    with pytest.raises(LawError, match="no bootstrap"):
        fit(exact, "two-step", bootstrap=10)
    # and the comparison leaves two-step out where it cannot be fitted
    ranked = compare(accuracy_only, ["two-step", "eq2"]).frame()
    assert set(ranked["form"]) == {"eq2"}


def test_round_trip_through_json_predicts_the_same(exact_fits):
    law = exact_fits.get(dataset="arc_easy").law()
    back = Law.from_dict(json.loads(json.dumps(law.to_dict())))
    assert back.coefficients == law.coefficients and back.form == "two-step"
    a, b = (x.predict([0.5, 0.7], [0.3, 0.8], [0, 512]) for x in (law, back))
    for name in ("L", "low", "high", "pi_low", "pi_high"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12)
    assert "σ(-" in law.formula() and "chance" not in law.formula()


def test_compare_ranks_two_step_against_eq2_per_task():
    df = table(loss_noise=0.01, acc_noise=0.005, seed=6)
    c = compare(df, ["two-step", "eq2"])
    frame = c.frame()
    acc = frame[frame["metric"] == "accuracy"]
    assert set(acc["dataset"]) == {"arc_easy", "piqa", MEAN}
    for name in TASKS:
        mine = acc[acc["dataset"] == name].sort_values("rank")
        assert list(mine["form"]) == ["two-step", "eq2"], mine
        assert mine["mape_pct"].iloc[0] < mine["mape_pct"].iloc[1]
        assert mine["delta_aic"].min() == 0.0
    assert list(acc[acc["dataset"] == MEAN]["form"]) == ["eq2"]  # no task loss for the mean
    losses = frame[frame["metric"] == "task_loss"]
    assert list(losses["form"]) == ["eq2"] and losses["dataset"].isna().all()
    best = {f.group.get("dataset"): f.form for f in c.best()}
    assert best["arc_easy"] == best["piqa"] == "two-step"


def test_task_loss_is_a_loss_metric(exact):
    losses = exact[exact["metric"] == "task_loss"]
    for form in ("eq1", "degradation"):
        res = fit(losses, form, by="dataset")
        assert [f.metric for f in res] == ["task_loss", "task_loss"]
    np.testing.assert_allclose(fit(losses, "degradation", by="dataset").get(
        dataset="piqa").coefficients["A"].estimate, STEP["A"], rtol=1e-6)
    assert [f.form for f in fit(exact, None) if f.metric == "task_loss"] == ["eq1"]


def test_fewer_accuracies_than_coefficients_is_enough_when_each_step_has_its_rows(exact):
    """Each step checks its own rows: accuracy measured at 3 ratios of one model (6 rows, fewer
    than the law's 8 coefficients) beside task loss at every ratio fits, and predicts held-out
    ratios (the CPU grid's SmolLM2 zero-shot design on the split r:0.5)."""
    one = exact[(exact["model"] == "m0") & (exact["dataset"] == next(iter(TASKS)))]
    accuracy = (one["metric"] == "accuracy") & one["r"].isin([0.1, 0.3, 0.5, 0.7, 0.9]) \
        & one["D"].isin([0.0, DSIZES[-1]])
    rows = one[accuracy | (one["metric"] == "task_loss")]
    held = heldout_error(rows, "two-step", "r:0.5")
    assert held.unfitted == 0 and held.n == 4
    assert held.summary().abs_error_points < 1e-3  # exact data: exact predictions


def test_a_base_accuracy_above_the_top_starts_from_the_measured_task_loss():
    """PIQA's base models on the CPU grid score above the link's fitted top: link⁻¹(acc0) is
    then infinite and the law would predict no fall; with the base task loss T0 (the law
    table's column) it starts where the model is."""
    law, p = truth("piqa"), TASKS["piqa"]
    loss0, acc0 = 1.0, p["top"] + 0.03
    r = np.array([0.0, 0.3, 0.6, 0.9])
    step = loss0 + STEP["A"] * r ** STEP["b"]  # D = 0
    expected = acc0 + sigmoid(p, step) - sigmoid(p, loss0)
    assert law.predict(acc0, r, 0.0, T0=loss0).L == pytest.approx(expected, abs=1e-9)
    inverted = law.predict(acc0, r, 0.0).L
    assert np.ptp(inverted) < 1e-3 and np.ptp(expected) > 0.1  # stuck at acc0 without T0


def test_the_law_table_carries_the_base_task_loss(exact):
    """T0 is the task_loss row's L0 of the same model and task, on accuracy and task-loss rows."""
    from complaw.laws.table import validate

    loss = exact[exact["metric"] == "task_loss"]
    base = loss.groupby(["model", "dataset"])["L0"].first()
    keys = zip(exact["model"], exact["dataset"], strict=True)
    rows = validate(exact.assign(T0=[base.get(k, np.nan) for k in keys]))
    fits = fit(rows, "two-step", holdout="r:0.5")
    plain = fit(exact, "two-step", holdout="r:0.5")
    # exact data: T0 = link⁻¹(acc0), so the same law
    for with_t0, without in zip(fits, plain, strict=True):
        assert with_t0.heldout["r:0.5"].mape_pct == pytest.approx(
            without.heldout["r:0.5"].mape_pct, abs=1e-6)
