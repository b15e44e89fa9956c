"""The report's zero-shot part: per-task accuracy laws (the two-step law where task loss was
measured), the evidence rule, the paper's extrinsic claims (line or parabola; critical ratio)."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.regression.linear_model import OLS
from tests.unit.report.report_synth import TASKS, make_study

from complaw.report import FIGURES, TABLES, Analysis, Skip, load_study
from complaw.report.figures import LAW, OBS
from complaw.report.zeroshot import R_GRID, critical_ratio_of, line_or_parabola


@pytest.fixture(scope="module")
def two_step(tmp_path_factory) -> Analysis:
    folder = make_study(tmp_path_factory.mktemp("two-step"), speed=False, task_loss=True,
                        noise=0.002)
    return Analysis(load_study(folder))


def test_line_or_parabola_matches_statsmodels():
    rng = np.random.default_rng(0)
    r = np.repeat([0.0, 0.1, 0.3, 0.5, 0.7, 0.9], 2)
    for curvature, shape in ((0.0, "linear"), (0.6, "convex"), (-0.6, "concave")):
        y = 0.6 - 0.2 * r + curvature * r**2 + rng.normal(0, 0.01, len(r))
        found = line_or_parabola(r, y)
        small = OLS(y, np.column_stack([np.ones_like(r), r])).fit()
        big = OLS(y, np.column_stack([np.ones_like(r), r, r**2])).fit()
        F, p, _ = big.compare_f_test(small)
        assert found["F"] == pytest.approx(F) and found["p_r2"] == pytest.approx(p)
        assert found["slope"] == pytest.approx(small.params[1])
        assert found["curvature"] == pytest.approx(big.params[2])
        assert found["shape"] == shape
    assert line_or_parabola(np.array([0.0, 0.1, 0.2]), np.array([1.0, 2.0, 3.0])) is None


def test_critical_ratio_of_a_line():
    # 0.6 - 0.3 r >= 0.9 * 0.6 up to r = 0.2
    assert critical_ratio_of(0.6 - 0.3 * R_GRID, 0.6, 0.9) == pytest.approx(0.2)
    assert critical_ratio_of(np.full_like(R_GRID, 0.6), 0.6, 0.9) == R_GRID[-1]


def test_two_step_is_the_best_accuracy_law_per_task_and_method(two_step):
    best = [f for f in two_step.best("tasks") if f.metric == "accuracy"]
    assert sorted((f.group["method"], f.group["dataset"]) for f in best) == sorted(
        (m, t) for m in ("prunenet", "slicegpt") for t in TASKS)
    for f in best:
        h = f.heldout["r:0.5"]
        assert f.form == "two-step" and h.n >= 8
        assert h.abs_error_points < 1.0  # accuracies follow the link: near exact


def test_tasks_figure_draws_measurements_and_laws(two_step):
    fig = FIGURES.get("tasks").draw(two_step)
    assert len(fig.axes) == 4
    rows, _ = two_step.rows("tasks", "all")
    acc = rows[rows["metric"] == "accuracy"]
    drawn = sum(len(line.get_xydata()) for ax in fig.axes for line in ax.get_lines()
                if line.get_gid() == OBS)
    shown = acc[acc["D"].isin([0, acc["D"].max()])]
    bases = shown.groupby(["method", "dataset", "model", "D"]).ngroups  # r = 0 on each line
    assert drawn == len(shown) + bases
    for ax in fig.axes:
        laws = [line for line in ax.get_lines() if line.get_gid() == LAW]
        assert laws and all(0.0 <= y <= 1.0 for line in laws for y in line.get_ydata())


def test_claims_tables(two_step):
    shape = TABLES.get("shape").make(two_step)
    assert set(shape.data["metric"]) == {"accuracy", "loss", "task_loss"}
    # the synthetic task loss grows as r^2: convex; test loss follows Eq. 1
    task = shape.data[shape.data["metric"] == "task_loss"]
    assert (task["shape"] == "convex").all()
    rcrit = TABLES.get("rcrit").make(two_step)
    assert set(rcrit.data["sigma"]) == {0.8, 0.9}
    assert (rcrit.data["r_crit_law"] >= 0).all()
    lower = rcrit.data.pivot_table(index=["model", "method", "dataset"], columns="sigma",
                                   values="r_crit_law")
    assert (lower[0.8] >= lower[0.9]).all()  # keeping less of L0 allows more compression


def test_answer_shows_per_task_laws_with_points(two_step):
    answer = TABLES.get("answer").make(two_step)
    tasks = answer.data[answer.data["L"] == "tasks"]
    acc = tasks[tasks["metric"] == "accuracy"]
    assert set(acc["form"]) == {"two-step"} and acc["abs_error_points"].notna().all()
    assert acc["noise_floor_points"].notna().all()


def test_without_task_loss_the_zero_shot_part_says_why(analysis_without):
    with pytest.raises(Skip):
        FIGURES.get("tasks").draw(analysis_without)


@pytest.fixture(scope="module")
def analysis_without(tmp_path_factory) -> Analysis:
    folder = make_study(tmp_path_factory.mktemp("old"), speed=False, methods=("prunenet",),
                        models=("tiny-a",))
    return Analysis(load_study(folder))
