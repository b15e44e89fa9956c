"""The CPU grid's zero-shot records (results/cpu-grid: three models, 200 documents per task):
the held-out results the README states hold on them, and the report's evidence rule keeps 4
held-out rows from being called best."""

from __future__ import annotations

from pathlib import Path

import pytest

from complaw.experiment.records import load_law_table
from complaw.laws import compare, fit, heldout_error
from complaw.laws.select import credible_best

STUDY = Path(__file__).resolve().parents[3] / "results" / "cpu-grid"
README = {"arc_easy": (2.5, 2.6, 9.8), "piqa": (4.9, 2.8, 4.5)}
"""Task -> the README's two-step error, noise floor and Eq. 2 error (points, r:0.5)."""


@pytest.fixture(scope="module")
def smollm2():
    table = load_law_table(STUDY)
    return table[(table["model"] == "smollm2-135m")
                 & table["metric"].isin(["accuracy", "task_loss"])]


@pytest.mark.parametrize("task", sorted(README))
def test_the_readmes_held_out_errors(smollm2, task):
    rows = smollm2[smollm2["dataset"] == task]
    assert len(rows[rows["metric"] == "accuracy"]) == 10  # 5 ratios x (D = 0, 4096)
    assert len(rows[rows["metric"] == "task_loss"]) == 14  # and task loss at 4 more ratios
    two = heldout_error(rows, "two-step", "r:0.5").summary()
    eq2 = heldout_error(rows[rows["metric"] == "accuracy"], "eq2", "r:0.5").summary()
    points, floor, paper = README[task]
    assert two.n == eq2.n == 4 and two.coverage == 1.0
    assert round(two.abs_error_points, 1) == points and round(two.noise_floor_points, 1) == floor
    assert round(eq2.abs_error_points, 1) == paper


POOLED = {("model", "arc_easy"): (30, 3.58, 2.64, 4.36), ("model", "piqa"): (30, 2.90, 2.80, 3.24),
          ("r:0.5", "arc_easy"): (12, 1.80, 2.55, 6.70), ("r:0.5", "piqa"): (12, 3.90, 2.82, 4.94)}
"""(split, task) -> the README's held-out rows, two-step error, noise floor and Eq. 2 error
(points) with the three models pooled."""


@pytest.mark.parametrize("split,task", sorted(POOLED))
def test_the_readmes_pooled_held_out_errors(split, task):
    table = load_law_table(STUDY)
    rows = table[(table["dataset"] == task) & table["metric"].isin(["accuracy", "task_loss"])]
    two = heldout_error(rows, "two-step", split).summary()
    eq2 = heldout_error(rows[rows["metric"] == "accuracy"], "eq2", split).summary()
    n, points, floor, paper = POOLED[split, task]
    assert two.n == eq2.n == n
    assert two.abs_error_points == pytest.approx(points, abs=0.005)
    assert two.noise_floor_points == pytest.approx(floor, abs=0.005)
    assert eq2.abs_error_points == pytest.approx(paper, abs=0.005)
    assert two.abs_error_points < eq2.abs_error_points


def test_four_held_out_rows_are_not_evidence_enough(smollm2):
    accuracy, reasons = credible_best(compare(smollm2, None, ["dataset"], holdout="r:0.5"))
    assert not [f for f in accuracy if f.metric == "accuracy"]
    assert all("not enough evidence" in why and "4 held-out row(s)" in why
               for why in reasons.values())


def test_the_docs_accuracy_plan_says_its_pinned_law_lacks_evidence():
    """docs/examples/plan-cpu-grid-accuracy.yaml plans on the two-step law it pins, starting
    from SmolLM2's measured base task loss, and says why the report would not call it best."""
    from complaw.laws.planner import load_plan, plan

    root = STUDY.parents[1]
    spec = load_plan(root / "docs" / "examples" / "plan-cpu-grid-accuracy.yaml")
    spec = spec.model_copy(update={"records": str(STUDY)})
    result = plan(spec, load_law_table(STUDY))
    law = result.laws["smollm2-135m"]
    assert law.form == "two-step" and law.T0 == pytest.approx(1.46, abs=0.01)
    assert result.choices and all(c.L >= 0.8 * c.L0 for c in result.choices)
    assert "not enough evidence" in result.doubts["smollm2-135m"]


def test_the_docs_plan_for_a_model_not_run_holds_on_its_measured_grid():
    """docs/examples/plan-new-model.yaml plans Qwen2.5-Coder-1.5B from its L0 alone on the
    prior of results/cpu-grid, assured: every choice's measured loss in results/cpu-new-model
    (WikiText-2, D = 1,024) meets the target, and the plan names the prior's law."""
    from complaw.laws.planner import load_plan, plan

    root = STUDY.parents[1]
    spec = load_plan(root / "docs" / "examples" / "plan-new-model.yaml")
    spec = spec.model_copy(update={"prior": spec.prior.model_copy(update={"study": str(STUDY)})})
    result = plan(spec, prior=load_law_table(STUDY))
    law = result.laws["qwen2.5-coder-1.5b"]
    assert law.form == "plateau" and "updated by 0 rows" in law.source and not result.doubts
    grid = load_law_table(STUDY.parent / "cpu-new-model")
    grid = grid[(grid["metric"] == "loss") & (grid["dataset"] == "wikitext2:test")
                & (grid["D"] == 1024)].set_index("r")
    L0 = float(grid["L0"].iloc[0])
    assert [c.r for c in result.choices] == [0.2, 0.1]
    assert all(grid.loc[c.r, "L"] <= 2 * L0 for c in result.choices)
    assert all(c.pi_high <= 2 * L0 < grid.loc[0.5, "L"] for c in result.choices)
    # --verify would run the choice with the prior study's settings, on the plan's dataset
    from complaw.study.verify import verification_spec

    study = verification_spec(spec, result.choices[0])
    assert study["models"] == ["qwen2.5-coder-1.5b"] and study["ratios"] == [0.2]
    assert study["evaluations"]["intrinsic"]["data"] == ["wikitext2:test"]
    assert study["recovery"]["samples"] == [0] and study["recovery"]["seq_len"] == 256


SEED_FLOORS = {"smollm2-135m": 7.31, "gemma3-270m": 8.97, "qwen2.5-coder-0.5b": 12.36}
"""Model -> docs/laws.md's seed noise floor (%) of test loss on results/cpu-seeds."""


def test_the_docs_seed_noise_floors():
    """results/cpu-seeds holds three seeds of 24 cells per model; its seed 0 is the cpu-grid's
    own measurement (the same records), and each model's floor is the one docs/laws.md gives."""
    from complaw.laws import noise_floor

    seeds = load_law_table(STUDY.parent / "cpu-seeds")
    seeds = seeds[(seeds["metric"] == "loss") & (seeds["r"] > 0)]
    grid = load_law_table(STUDY).set_index(["experiment", "dataset", "metric"])["L"]
    first = seeds[seeds["seed"] == 0].set_index(["experiment", "dataset", "metric"])["L"]
    assert len(first) == 72 and (grid.loc[first.index] == first).all()
    for model, floor in SEED_FLOORS.items():
        mine = seeds[seeds["model"] == model]
        assert mine.groupby("seed").size().to_dict() == {0: 24, 1: 24, 2: 24}
        assert noise_floor(mine) == {"seeds": 3, "n": 72,
                                     "mape_pct": pytest.approx(floor, abs=0.005)}


TREND = {"smollm2-135m": (18.7, 23.3), "gemma3-270m": (17.8, 16.6),
         "qwen2.5-coder-0.5b": (11.8, 14.1), "qwen2.5-coder-1.5b": (11.0, 33.2)}
"""Model -> the docs' leave-one-model-out MAPE (%) of test loss, onset pooled over the four
models sharing k, c: with the onset h's mean following model size, and without."""


def test_the_docs_size_trend_carries_the_law_to_a_model_of_another_size():
    from complaw.laws.table import merge

    table = merge([load_law_table(STUDY), load_law_table(STUDY.parent / "cpu-new-model")])
    loss = table[table["metric"] == "loss"]
    assert set(loss.groupby("model")["N0"].nunique()) == {1}  # one size per model
    errors = {}
    for trend in (("h",), ()):
        fits = fit(loss, "onset", "model", holdout="model", pool=["k", "c"], trend=trend)
        errors[trend] = {f.group["model"]: f.heldout["model"].mape_pct for f in fits}
    for model, (with_trend, without) in TREND.items():
        assert errors[("h",)][model] == pytest.approx(with_trend, abs=0.05)
        assert errors[()][model] == pytest.approx(without, abs=0.05)
    assert fits[0].pooling["trend"] == {}  # the last fit is the one without


PLATEAU = {"smollm2-135m": (11.3, 11.7), "gemma3-270m": (10.7, 11.4),
           "qwen2.5-coder-0.5b": (13.5, 14.3), "qwen2.5-coder-1.5b": (None, 14.8)}
"""Model -> the docs' r:0.5 MAPE (%) of test loss, plateau pooled: over the three models of
the grid sharing h, c (the form's declared share), and over four sharing c with h following
size."""


def test_the_docs_plateau_carries_each_models_law_past_r_half():
    from complaw.laws.table import merge

    table = merge([load_law_table(STUDY), load_law_table(STUDY.parent / "cpu-new-model")])
    loss = table[table["metric"] == "loss"]
    three = loss[loss["model"] != "qwen2.5-coder-1.5b"]
    runs = ((0, three, True, ()), (1, loss, ["c"], ["h"]))
    for column, rows, pool, trend in runs:
        for f in fit(rows, "plateau", "model", holdout="r:0.5", pool=pool, trend=trend):
            held = f.heldout["r:0.5"]
            assert held.mape_pct == pytest.approx(PLATEAU[f.group["model"]][column], abs=0.05)
            assert held.mape_pct <= 15.0 and held.coverage >= 0.8  # the goals
