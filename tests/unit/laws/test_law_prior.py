"""A prior from other studies (`complaw.laws.prior`, `PooledFit.update`, ``predict --prior``):
a new model's amplitude from two noise-free rows, the update against the closed-form Bayesian
linear regression, the prior-driven design's first batch against brute force, bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from law_synth import grid
from test_law_pooling import AMPLITUDES, SHAPE, SIZES, models, pooled, sized
from typer.testing import CliRunner

from complaw.cli import app
from complaw.errors import LawError
from complaw.laws import get_form
from complaw.laws.fit import inputs_of
from complaw.laws.planner import DEFAULT_RATIOS, parse_plan, plan
from complaw.laws.prior import PriorMismatchError, prior_design, prior_fit, prior_laws
from complaw.laws.select import fit

NEW_A = 25.0


def new_model(A: float = NEW_A) -> pd.DataFrame:
    """The `models` rows of a model "new" with amplitude ``A`` and the shared `SHAPE`."""
    df = models({"new": A})
    return df.assign(model="new")


def test_a_new_models_amplitude_is_recovered_from_two_noise_free_rows():
    prior = models(AMPLITUDES, noise=0.0)
    rows = new_model()
    two = rows[(rows["D"] == 0) & rows["r"].isin([0.3, 0.7])]
    assert len(two) == 2
    (found,) = prior_laws(prior, two, form="degradation", share=("b", "Dl", "c"))
    assert found.rows == 2
    assert found.law.coefficients["A"] == pytest.approx(NEW_A, rel=1e-4)
    for coef, value in SHAPE.items():
        assert found.law.coefficients[coef] == pytest.approx(value, rel=1e-4)
    # the population law knew only the mean amplitude; the rows moved A, not the shape
    assert found.population.coefficients["A"] != pytest.approx(NEW_A, rel=0.05)
    moved = found.moved()
    assert abs(moved["A"]["moved_sd"]) > 0.1 and abs(moved["b"]["moved_sd"]) < 1e-2


def test_no_rows_give_the_population_law_and_a_linear_update_is_bayesian_regression():
    rng = np.random.default_rng(4)
    df = grid(np.array([2.0, 2.5, 3.0, 3.5]), dsizes=np.array([0.0, 1000.0]))
    beta = {"m0": 1.5, "m1": 1.8, "m2": 1.3, "m3": 2.0}
    df["L"] = np.exp(0.9 * np.log(df["L0"]) + df["model"].map(beta) * np.log1p(df["r"])
                     + 0.5 * np.log1p(1 / (df["D"] + 1)) + rng.normal(0, 0.02, len(df)))
    df = df.assign(method="prunenet", calibration="none", dataset="wikitext2", metric="loss")
    fitted = pooled(df, form="eq1", share=("alpha", "gamma"))
    population = fitted.law(None)
    empty = fitted.update(df.iloc[:0])
    assert empty.vector() == pytest.approx(population.vector(), rel=1e-6)
    assert np.asarray(empty.cov) == pytest.approx(np.asarray(population.cov), rel=1e-5)
    # a new model's rows: the posterior of a normal prior N(m, P) and noise s, in closed form
    new = df[df["model"] == "m0"].iloc[:3].assign(model="new")
    new["L"] *= np.exp(0.3 * np.log1p(new["r"]))
    form = get_form("eq1")
    X = form.design(inputs_of(new))
    z = np.log(new["L"].to_numpy())
    m, P, s = population.vector(), np.asarray(population.cov), fitted.s
    precision = np.linalg.inv(P) + X.T @ X / s**2
    cov = np.linalg.inv(precision)
    mean = cov @ (np.linalg.inv(P) @ m + X.T @ z / s**2)
    law = fitted.update(new)
    assert law.vector() == pytest.approx(mean, rel=1e-5)
    assert np.asarray(law.cov) == pytest.approx(cov, rel=1e-4)


def test_the_prior_driven_designs_first_batch_is_the_variance_optimal_one_by_brute_force():
    fitted = pooled(models(AMPLITUDES, noise=0.03), share=("b", "Dl", "c"))
    rows = new_model(NEW_A)
    rows = rows[rows["r"] > 0].iloc[::2].reset_index(drop=True)  # a small pool
    rows["unit"] = [f"u{i // 2}" for i in range(len(rows))]  # two rows per experiment
    units = list(dict.fromkeys(rows["unit"]))
    assert len(units) >= 5
    step = next(prior_design(fitted, rows, lambda u: rows[rows["unit"].isin(u)],
                             lambda b, chosen: float(len(b)), budget=2.0, batch=2))
    assert step.index == 0 and step.law.coefficients == fitted.law(None).coefficients
    # brute force: every pair, its summed prediction variance over the pool from the prior's
    # information s² P⁻¹ plus the pair's rows, by direct numerical differentiation
    law = fitted.law(None)
    G = law.gradient(inputs_of(rows))
    s2 = fitted.s**2
    M0 = s2 * np.linalg.inv(np.asarray(law.cov))

    def variance(pair):
        Gb = G[rows["unit"].isin(pair).to_numpy()]
        return s2 * np.trace(G @ np.linalg.inv(M0 + Gb.T @ Gb) @ G.T)

    best = min(itertools.combinations(units, 2), key=variance)
    assert sorted(step.batch) == sorted(best)
    later = list(prior_design(fitted, rows, lambda u: rows[rows["unit"].isin(u)],
                              lambda b, chosen: float(len(b)), budget=4.0, batch=2))
    assert [len(s.batch) for s in later] == [2, 2, 0] and later[-1].stop == "the budget is spent"


def test_a_prior_with_a_size_trend_knows_a_new_models_amplitude_from_its_size_alone(tmp_path):
    df = sized(SIZES)
    prior, new = df[df["model"] != "m3"], df[df["model"] == "m3"]
    truth = new[new["r"] > 0].reset_index(drop=True)
    one = truth[(truth["r"] == 0.5) & (truth["D"] == 0)]
    (found,) = prior_laws(prior, one, form="degradation", share=("b", "Dl", "c"),
                          trend=("A",))
    for law in (found.population, found.law):  # the size alone already says it
        assert law.predict(**inputs_of(truth)).L == pytest.approx(truth["L"], rel=1e-3)
    result = CliRunner().invoke(app, [
        "predict", "--prior", write(prior, tmp_path / "prior.csv"), "--records",
        write(one, tmp_path / "new.csv"), "--form", "degradation", "--share", "b,Dl,c",
        "--trend", "A", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["law"]["coefficients"]["A"] == pytest.approx(
        found.law.coefficients["A"], rel=1e-6)
    # the design's first step, before any row, takes the size from its grid
    fitted = prior_fit(prior, "loss", "degradation", ("b", "Dl", "c"), ("A",))
    step = next(prior_design(fitted, truth.assign(unit="u"), lambda u: truth.iloc[:0],
                             lambda b, chosen: 1.0, budget=1.0))
    assert step.law.coefficients["A"] == pytest.approx(found.population.coefficients["A"])
    (flat,) = prior_laws(prior, one, form="degradation",
                         share=("b", "Dl", "c"))
    assert flat.population.coefficients["A"] != pytest.approx(
        found.population.coefficients["A"], rel=0.05)


def test_a_model_with_only_its_baseline_gets_the_population_law_at_its_size(tmp_path):
    """`predict --prior --records FOLDER` where the new model has run only its baseline: the
    population law at the size its record gives, predicted on its measured L0."""
    from complaw.config import Experiment, Intrinsic
    from complaw.experiment.records import Record

    df = sized(SIZES)
    prior = df[df["model"] != "m3"]
    truth = df[(df["model"] == "m3") & (df["r"] > 0)]
    record = Record.new("evaluate", Experiment(model="m3", eval=Intrinsic(
        data=("wikitext2",), seq_len=8)))
    record.metrics = [{"metric": "loss", "dataset": "wikitext2",
                       "value": float(truth["L0"].iloc[0])}]
    record.params = {"total": 2 * SIZES["m3"], "blocks": SIZES["m3"]}
    record.status = "ok"
    record.write(tmp_path / "new")
    result = CliRunner().invoke(app, [
        "predict", "--prior", write(prior, tmp_path / "prior.csv"), "--records",
        str(tmp_path / "new"), "--form", "degradation", "--share", "b,Dl,c", "--trend", "A",
        "--r", "0.3", "--r", "0.7", "--D", "0", "--json"])
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert out["model"] == "m3" and out["rows"] == 0
    expected = truth[truth["r"].isin([0.3, 0.7]) & (truth["D"] == 0)].sort_values("r")
    L = [p["L"] for p in out["predictions"]]
    assert L == pytest.approx(expected["L"].to_numpy(), rel=1e-3)
    assert all(m["moved_sd"] == 0 for m in out["moved"].values())


def write(df: pd.DataFrame, path) -> str:
    df.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("change, needle", [
    ({"method": "slicegpt"}, "no loss rows of method prunenet"),
    ({"dataset": "ptb"}, "no loss rows of dataset wikitext2"),
    ({"metric": "accuracy", "L": 0.5, "L0": 0.6}, "the prior study has no loss rows"),
])
def test_a_prior_that_measured_something_else_is_one_line_exit_2_and_writes_nothing(
        tmp_path, refused, change, needle):
    prior = write(models(AMPLITUDES).assign(**change), tmp_path / "prior.csv")
    new = write(new_model(), tmp_path / "new.csv")
    refused(["predict", "--prior", prior, "--records", new, "--form", "degradation",
             "--r", "0.5"], needle, tmp_path)
    with pytest.raises(LawError, match="two models or more"):
        prior_fit(models({"m0": 6.0}), "loss", "degradation")  # one model has no spread
    with pytest.raises(PriorMismatchError, match="--metric"):
        prior_laws(models(AMPLITUDES), new_model(), metric="accuracy")


def test_predict_with_a_prior_prints_the_law_its_moves_and_predictions_as_json(tmp_path):
    prior = write(models(AMPLITUDES), tmp_path / "prior.csv")
    rows = new_model()
    new = write(rows[(rows["D"] == 0) & rows["r"].isin([0.3, 0.7])], tmp_path / "new.csv")
    result = CliRunner().invoke(app, ["predict", "--prior", prior, "--records", new, "--form",
                                      "degradation", "--share", "b,Dl,c", "--r", "0.5", "--D",
                                      "0", "--D", "1000", "--json"])
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert out["model"] == "new" and out["rows"] == 2 and out["prior"] == prior
    assert out["law"]["coefficients"]["A"] == pytest.approx(NEW_A, rel=1e-4)
    truth = get_form("degradation").predict(
        {"A": NEW_A, **SHAPE}, {"L0": np.array([2.0, 2.0]), "r": np.array([0.5, 0.5]),
                                "D": np.array([0.0, 1000.0])})
    L = [p["L"] for p in out["predictions"]]
    assert L == pytest.approx(truth, rel=1e-4)
    assert all(p["pi"][0] <= p["L"] <= p["pi"][1] for p in out["predictions"])


def two_step_rows(amplitudes: dict[str, float]) -> pd.DataFrame:
    """Task-loss rows of the degradation law with each model's amplitude A (test_law_twostep's
    STEP shape) and accuracy rows through each task's sigmoid link, noise-free, D = 0 and
    1,024; the base task loss T0 on every row."""
    from test_law_twostep import RATIOS, STEP, TASKS, sigmoid

    rows = []
    for task, p in TASKS.items():
        for i, (model, A) in enumerate(amplitudes.items()):
            loss0 = 0.8 + 0.15 * i
            for r, d in itertools.product(RATIOS, (0.0, 1024.0)):
                loss = loss0 + A * r ** STEP["b"] * (1 + d / STEP["Dl"]) ** -STEP["c"]
                common = {"model": model, "method": "prunenet", "calibration": "none",
                          "dataset": task, "r": r, "D": d, "chance": p["chance"], "T0": loss0}
                rows += [{**common, "metric": "task_loss", "L": loss, "L0": loss0},
                         {**common, "metric": "accuracy", "L": sigmoid(p, loss),
                          "L0": sigmoid(p, loss0)}]
    return pd.DataFrame(rows)


def test_a_new_models_two_step_accuracy_law_from_two_task_loss_rows():
    """Per task: step 1's amplitude from two task-loss rows and the prior's shape, the link from
    the prior's pairs; the composed law predicts every accuracy of the new model."""
    from test_law_twostep import STEP, TASKS

    prior = two_step_rows({"m0": 1.5, "m1": 2.0, "m2": 2.5, "m3": 3.0})
    new = two_step_rows({"m0": 2.0, "m1": 2.0, "new": 3.4}).query("model == 'new'")
    two = new[(new["metric"] == "task_loss") & (new["D"] == 0) & new["r"].isin([0.3, 0.7])]
    found = prior_laws(prior, two, metric="accuracy", form="two-step", share=("b", "Dl", "c"))
    assert [(f.model, f.dataset, f.rows) for f in found] == [("new", t, 2) for t in TASKS]
    for f in found:
        assert f.law.coefficients["A"] == pytest.approx(3.4, rel=1e-3)
        assert f.law.coefficients["b"] == pytest.approx(STEP["b"], rel=1e-3)
        for name, value in TASKS[f.dataset].items():
            assert f.law.coefficients[name] == pytest.approx(value, rel=1e-3)
        acc = new[(new["metric"] == "accuracy") & (new["dataset"] == f.dataset)]
        hat = f.law.predict(acc["L0"], acc["r"], acc["D"])  # from the law's own T0
        assert f.law.T0 == pytest.approx(1.1) and hat.L == pytest.approx(acc["L"], abs=1e-4)
        assert np.all(np.isfinite(hat.pi_low) & (hat.pi_low <= hat.pi_high))
        assert f.population.coefficients["A"] != pytest.approx(3.4, rel=0.1)
    with pytest.raises(PriorMismatchError, match="no accuracy rows of task"):
        prior_laws(prior[prior["metric"] == "task_loss"], two, metric="accuracy",
                   form="two-step")


def test_a_new_models_two_step_law_from_its_baseline_alone_starts_at_its_task_loss():
    """No rows but the baseline: per task, step 1 is the prior's population law (here every
    model shares the amplitude, so it is the truth), started from the base task loss."""
    from test_law_twostep import TASKS

    prior = two_step_rows({"m0": 2.0, "m1": 2.0, "m2": 2.0})
    new = two_step_rows({"m0": 2.0, "m1": 2.0, "m2": 2.0, "new": 2.0}).query("model == 'new'")
    bases = new.drop_duplicates(["dataset", "metric"])[["model", "dataset", "metric", "L0"]]
    found = prior_laws(prior, new.iloc[:0], metric="accuracy", form="two-step",
                       share=("b", "Dl", "c"), bases=bases)
    assert [(f.model, f.dataset, f.rows) for f in found] == [("new", t, 0) for t in TASKS]
    for f in found:
        acc = new[(new["metric"] == "accuracy") & (new["dataset"] == f.dataset)]
        T0 = float(new.loc[(new["metric"] == "task_loss") & (new["dataset"] == f.dataset),
                           "L0"].iloc[0])
        assert f.law.T0 == pytest.approx(T0)
        assert f.law.predict(acc["L0"], acc["r"], acc["D"]).L == pytest.approx(acc["L"],
                                                                              abs=1e-3)


PLATEAU = {"k": 2.0, "h": 0.6, "Dl": 300.0, "c": 0.3}
"""The plateau form's shape the synthetic priors below share."""


def test_a_prior_without_a_form_takes_the_metrics_pooled_form():
    """Loss's prior (and a pooled fit) without --form is `plateau` (`Metric.pooled`): the
    form that carries a law to a model best, held out; a fit of one model stays Eq. 1."""
    prior = models(AMPLITUDES, noise=0.01, form="plateau", shape=PLATEAU)
    rows = models({"new": NEW_A}, form="plateau", shape=PLATEAU).assign(model="new")
    two = rows[(rows["D"] == 0) & rows["r"].isin([0.3, 0.7])]
    (found,) = prior_laws(prior, two)
    assert found.law.form == "plateau"
    assert found.law.coefficients["A"] == pytest.approx(NEW_A, rel=0.05)
    assert found.law.predict(**inputs_of(rows)).L == pytest.approx(rows["L"], rel=0.02)
    assert {f.form for f in fit(prior, None, "model", pool=True)} == {"plateau"}
    assert {f.form for f in fit(prior, None, "model")} == {"eq1"}


def plan_spec(candidate: dict, **extra) -> dict:
    """A plan for one candidate with the prior "prior.csv": loss at most 2 L0 at D = 256."""
    return {"prior": {"study": "prior.csv"}, "target": {"metric": "loss", "sigma": 0.5},
            "budget": {"rft_tokens": 256}, "objective": "smallest",
            "candidates": [{"name": "new", **candidate}], **extra}


def test_a_plan_for_a_model_not_run_takes_the_priors_law_and_its_own_rows():
    """`PlanPrior`: a candidate with only its L0 is planned on the prior's population law, a
    candidate with rows in the records on the prior updated by them (its rows in the prior
    itself are left out); assured choices never pass the point prediction's."""
    prior = models(AMPLITUDES, noise=0.01, form="plateau", shape=PLATEAU)
    truth = models({"new": NEW_A}, form="plateau", shape=PLATEAU).assign(model="new")
    L0 = float(truth["L0"].iloc[0])
    population = prior_fit(prior, "loss").law(None)

    def largest(law) -> float:  # the largest ratio of the plan's grid whose L meets 2 L0
        rs = [r for r in DEFAULT_RATIOS if law.predict(L0, r, 256).L[0] <= 2 * L0]
        return max(rs)

    alone = plan(parse_plan(plan_spec({"L0": {"loss": L0}})), prior=prior)
    assert alone.laws["new"].vector() == pytest.approx(population.vector(), rel=1e-6)
    assert max(c.r for c in alone.choices) == largest(population)
    assert "assured: true" in alone.doubts["new"]
    # its rows in the records move it to its own amplitude, even when the prior holds them
    two = truth[(truth["D"] == 0) & truth["r"].isin([0.3, 0.7])]
    moved = plan(parse_plan(plan_spec({}, records="new.csv")), two,
                 prior=pd.concat([prior, truth]))
    assert moved.laws["new"].vector() == pytest.approx(
        prior_fit(prior, "loss").update(two.reset_index(drop=True), "new").vector(), rel=1e-6)
    assert moved.laws["new"].coefficients["A"] == pytest.approx(NEW_A, rel=0.05)
    assert max(c.r for c in moved.choices) == largest(moved.laws["new"])
    assured = plan(parse_plan(plan_spec({"L0": {"loss": L0}}, assured=True)), prior=prior)
    assert max(c.r for c in assured.choices) < max(c.r for c in alone.choices)
    assert not assured.doubts


def test_a_plan_takes_the_prior_of_its_candidates_method():
    """A prior of two methods: a candidate whose where names one is planned on that method's
    models alone (the other method's rows, twice as damaging, left out)."""
    prunenet = models(AMPLITUDES, noise=0.01, form="plateau", shape=PLATEAU)
    doubled = {m: 2 * a for m, a in AMPLITUDES.items()}
    slicegpt = models(doubled, noise=0.01, seed=1, form="plateau", shape=PLATEAU)
    prior = pd.concat([prunenet, slicegpt.assign(method="slicegpt")], ignore_index=True)
    for method, alone in (("prunenet", prunenet), ("slicegpt", slicegpt)):
        found = plan(parse_plan(plan_spec({"L0": {"loss": 2.0}, "where": {"method": method}})),
                     prior=prior)
        assert found.laws["new"].vector() == pytest.approx(
            prior_fit(alone, "loss").law(None).vector(), rel=1e-6)


def test_a_plan_with_a_prior_refuses_what_it_cannot_plan(tmp_path, refused):
    prior = models(AMPLITUDES, noise=0.01, form="plateau", shape=PLATEAU)
    sized_prior = sized(SIZES, noise=0.01)
    with pytest.raises(LawError, match="pass its law table"):
        plan(parse_plan(plan_spec({"L0": {"loss": 2.0}})))
    with pytest.raises(LawError, match="give it"):  # no rows to read L0 from, none given
        plan(parse_plan(plan_spec({}, records="new.csv")), prior.iloc[:0], prior=prior)
    with pytest.raises(LawError, match="drop prior.trend"):
        plan(parse_plan(plan_spec({"L0": {"loss": 2.0}}, prior={
            "study": "p.csv", "form": "degradation", "share": ["b", "Dl", "c"],
            "trend": ["A"]})), prior=sized_prior)
    with pytest.raises(LawError, match="fitted in steps"):
        plan(parse_plan(plan_spec({"L0": {"loss": 2.0}}, prior={
            "study": "p.csv", "form": "two-step"})), prior=prior)
    with pytest.raises(PriorMismatchError, match="method slicegpt"):  # no rows: its where
        plan(parse_plan(plan_spec({"L0": {"loss": 2.0}, "where": {"method": "slicegpt"}})),
             prior=prior)
    new = models({"new": NEW_A}, form="plateau", shape=PLATEAU).assign(model="new")
    with pytest.raises(PriorMismatchError, match="dataset"):
        plan(parse_plan(plan_spec({}, records="new.csv")), new.assign(dataset="ptb"),
             prior=prior)
    write(prior, tmp_path / "prior.csv")
    spec = tmp_path / "plan.yaml"
    spec.write_text(yaml.safe_dump(plan_spec({"L0": {"loss": 2.0}}, prior={
        "study": str(tmp_path / "prior.csv"), "form": "plateau", "share": ["q"]})))
    refused(["plan", str(spec)], "has no coefficient q", tmp_path)
