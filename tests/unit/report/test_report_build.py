"""build_report on synthetic studies: every section, known answers, partial studies, bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from report_synth import ACC_LAW, LOSS_LAW, MODELS, RUNTIME_BETA, make_study

from complaw.cli import main
from complaw.errors import RecordError
from complaw.experiment.records import law_table
from complaw.laws import fit
from complaw.laws.forms import forms_for, get_form
from complaw.laws.published import laws_from_file
from complaw.report import FIGURES, TABLES, build_report


def test_full_report_has_every_table_and_figure(full_report):
    assert full_report.errors == {}
    assert full_report.skipped == {}
    assert sorted(full_report.tables) == sorted(TABLES)
    assert sorted(full_report.figures) == sorted(FIGURES)
    folder = full_report.index.parent
    html = full_report.index.read_text()
    md = (folder / "index.md").read_text()
    for name, spec in TABLES.items():
        assert (folder / "tables" / f"{name}.csv").is_file()
        assert r"\begin{tabular}" in (folder / "tables" / f"{name}.tex").read_text()
        assert spec.title in md
        assert f'id="{name}"' in html
    for name in FIGURES:
        assert (folder / "figures" / f"{name}.png").stat().st_size > 1000
        assert f"figures/{name}.png" in html and f"figures/{name}.png" in md


def _table(report, name: str) -> pd.DataFrame:
    return pd.read_csv(report.index.parent / "tables" / f"{name}.csv")


def _inside(row: pd.Series, truth: dict[str, float]) -> None:
    """The truth lies within 4 standard errors, and the CI columns bracket the estimate."""
    for coef, value in truth.items():
        assert abs(row[coef] - value) <= 4 * row[f"{coef}_se"], (coef, value, row.to_dict())
        assert row[f"{coef}_lo"] < row[coef] < row[f"{coef}_hi"]


def test_table1_is_the_fit_of_the_law_table_and_finds_the_true_law(full_study, full_report):
    t1 = _table(full_report, "table1")
    registered = {f.name for m in ("loss", "accuracy") for f in forms_for(m)
                  if f.companion is None}
    assert set(t1["form"]) == registered
    assert {"eq1", "eq2", "eq3", "additive", "degradation", "retention"} <= registered
    assert set(t1["L"]) == {"intrinsic", "extrinsic"}
    df = law_table(full_study / "records")
    free = df[(df["metric"] == "loss") & (df["calibration"] == "none")]
    expected = fit(free, "eq1").only()
    row = t1[(t1["L"] == "intrinsic") & (t1["form"] == "eq1")].iloc[0]
    assert row["n"] == expected.n == len(MODELS) * 5 * 3 * 3
    for coef, c in expected.coefficients.items():
        assert row[coef] == pytest.approx(c.estimate, rel=1e-9)
    assert row["aic"] == pytest.approx(expected.aic)
    _inside(row, dict(zip(("alpha", "beta", "gamma"), LOSS_LAW["prunenet"], strict=True)))
    assert row["paper"] == "paper:all:intrinsic"
    assert (t1.groupby("L")["delta_aic"].min() == 0).all()
    # Eq. 1 is the true form: the ablations and the other forms lose on AIC and held-out error
    best = t1.loc[t1.groupby("L")["aic"].idxmin()]
    assert set(best["form"]) == {"eq1"}
    intrinsic = t1[t1["L"] == "intrinsic"].set_index("form")
    assert intrinsic["mape_pct[r:0.5]"].idxmin() == "eq1"
    assert intrinsic.loc["eq1", "heldout_n[r:0.5]"] == len(MODELS) * 2 * 3 * 3


def test_tables_2_3_4_6_find_the_true_laws(full_report):
    t2 = _table(full_report, "table2")
    assert sorted(t2["model"].unique()) == sorted(MODELS)
    for _, row in t2[t2["L"] == "intrinsic"].iterrows():
        _inside(row, dict(zip(("alpha", "beta", "gamma"), LOSS_LAW["prunenet"], strict=True)))
    t3 = _table(full_report, "table3")
    calibrated = t3[(t3["compression"] == "calibrated") & (t3["L"] == "intrinsic")].iloc[0]
    _inside(calibrated, dict(zip(("alpha", "beta", "gamma"), LOSS_LAW["slicegpt"], strict=True)))
    assert calibrated["paper"] == "paper:calibrated:intrinsic"
    acc = t3[(t3["compression"] == "calibration-free") & (t3["L"] == "extrinsic")].iloc[0]
    assert acc["beta"] == pytest.approx(ACC_LAW["prunenet"][1], abs=0.1)
    t4 = _table(full_report, "table4")
    assert len(t4) == len(MODELS)
    for _, row in t4.iterrows():
        _inside(row, {"beta": RUNTIME_BETA})
        assert abs(row["const"]) < 0.05  # C = S0
    t6 = _table(full_report, "table6")
    assert len(t6) == 2 * 3  # (calibration-free, calibrated) x three test sets
    assert set(t6["paper"].dropna()) >= {"paper:wikitext2:intrinsic", "paper:ptb:intrinsic"}


def test_paper_table_and_planner(full_report):
    paper = _table(full_report, "paper")
    row = paper[(paper["table"] == "table1") & (paper["paper"] == "paper:all:intrinsic")]
    assert row["alpha_paper"].iloc[0] == pytest.approx(0.63)
    assert bool(row["alpha_paper_in_ci"].iloc[0])
    plan = _table(full_report, "plan")
    assert set(plan["sigma"]) == {0.8, 0.9}
    assert set(plan["method"]) == {"prunenet", "slicegpt"}
    laws = laws_from_file(full_report.index.parent / "laws.json")
    D = float(law_table(full_report.index.parent.parent / "records")["D"].max())
    for _, row in plan[plan["r"].notna()].iterrows():
        law = laws[row["law"]]
        acc = row["metric"] == "accuracy"
        target = row["sigma"] * row["L0"] if acc else row["L0"] / row["sigma"]

        def meets(r, law=law, row=row, acc=acc, target=target):
            L = law.predict(row["L0"], r, D).L[0]
            return L >= target if acc else L <= target

        assert meets(row["r"]) and (row["r"] >= 0.95 or not meets(row["r"] + 0.05))
        assert row["D_needed"] <= D and row["L_low"] <= row["L_pred"] <= row["L_high"]
    answer = _table(full_report, "answer")
    assert set(answer["method"]) == {"prunenet", "slicegpt"}
    # an infeasible best law only where the feasible accuracy forms lose to the paper's Eq. 2
    # (the synthetic mean accuracy follows Eq. 1)
    assert set(answer.loc[~answer["feasible"], "metric"]) <= {"accuracy"}
    held = _table(full_report, "heldout")
    for _, row in answer.iterrows():
        mine = held[(held["method"] == row["method"]) & (held["L"] == row["L"])
                    & (held["metric"] == row["metric"])]
        if isinstance(row.get("dataset"), str):
            mine = mine[mine["dataset"] == row["dataset"]]
        feasible = mine[mine["feasible"]].sort_values("rank")
        if row["feasible"]:
            assert row["form"] == feasible["form"].iloc[0]  # the best feasible form ...
        else:  # ... unless it loses to Eq. 2 on the held-out rows (complaw.laws.select)
            eq2 = mine[mine["form"] == "eq2"]["mape_pct[r:0.5]"].iloc[0]
            assert feasible["mape_pct[r:0.5]"].iloc[0] > eq2
        eq1 = mine[mine["form"] == "eq1"]["mape_pct[r:0.5]"].iloc[0]
        assert row["eq1_mape_pct"] == pytest.approx(eq1)  # ... beside the paper's Eq. 1
    # laws.json holds every split the report shows: no fit gains one after it is written
    shown = {c[len("mape_pct["):-1] for c in held.columns if c.startswith("mape_pct[")}
    written = json.loads((full_report.index.parent / "laws.json").read_text())
    assert shown == {"r:0.5", "D", "model"}
    assert all({h["split"] for h in f["heldout_all"]} == shown for f in written)


def test_the_prior_table_refits_the_form_the_design_ran_with(full_report):
    """The study's design.json names Eq. 1 and its settings no form: the report's prior table
    is that law (not loss's pooled default, plateau), with every coefficient it moved."""
    table = _table(full_report, "prior")
    assert set(table["coef"]) == set(get_form("eq1").coef_names(None))
    assert "pooled eq1 law" in full_report.index.parent.joinpath("index.md").read_text()


def test_partial_study_still_gives_a_page(partial_report):
    assert partial_report.errors == {}
    skipped = partial_report.skipped
    assert {"fig01", "fig02", "fig04b", "fig04c", "fig04d", "fig06", "fig07",
            "fig08", "table4"} <= set(skipped)
    assert {"fig03", "fig04a", "fig05", "fig10", "table1", "table2", "table6"} <= set(
        partial_report.figures + partial_report.tables
    )
    html = partial_report.index.read_text()
    assert "Not shown" in html and skipped["fig07"] in html
    assert "intrinsic eq1: D takes a single value" in html  # no RFT effect is measured


def test_a_folder_of_records(partial_study, tmp_path):
    report = build_report(partial_study / "records", tmp_path / "rep")
    assert report.index == tmp_path / "rep" / "index.html" and report.errors == {}
    assert "table1" in report.tables


def test_out_replaces_only_an_earlier_report(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "rep"
    build_report(tmp_path / "empty", out)
    (out / "stale.txt").write_text("from an earlier report")
    build_report(tmp_path / "empty", out)  # replaces its own earlier report, atomically
    assert (out / "index.html").is_file() and not (out / "stale.txt").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(RecordError, match="not empty"):
        build_report(tmp_path / "empty", tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_one_model_one_dataset_falls_back_on_eq2(tmp_path):
    """One L0 and D = 0 only: log L0 and the D term are both constant, so Eq. 1 cannot be
    fitted; Figure 5 uses Eq. 2, and the planner the best form that can be fitted."""
    study = make_study(tmp_path / "one", methods=("prunenet",), rft=(None,), zeroshot=False,
                       speed=False, runner_files=False, models=("tiny-a",),
                       datasets=("wikitext2:test",))
    report = build_report(study)
    assert report.errors == {}
    assert "not identifiable" in report.skipped["table2"]
    assert {"fig04a", "fig05", "plan"} <= set(report.figures + report.tables)
    plan = pd.read_csv(report.index.parent / "tables" / "plan.csv")
    (law,) = set(plan["law"])  # the best feasible form that could be held out
    assert law.startswith("fit:") and law.endswith(":loss:method=prunenet")
    assert get_form(law.split(":")[1]).feasible
    assert plan["r"].notna().all()  # a feasible form meets a target relative to L0 at small r
    assert "(1+r)^" in report.index.read_text()


def test_only_base_records(tmp_path):
    study = make_study(tmp_path / "base", methods=(), runner_files=False)
    report = build_report(study)
    assert report.errors == {}
    assert {"config", "counts", "environment", "timings"} <= set(report.tables)
    forms = {m: ", ".join(f.name for f in forms_for(m) if f.companion is None)
             for m in ("loss", "accuracy")}
    assert report.skipped["table1"] == (
        f"intrinsic {forms['loss']} (all rows) not fitted: no intrinsic rows in this "
        f"study; extrinsic {forms['accuracy']} (all rows) not fitted: no extrinsic rows in "
        "this study")
    assert set(FIGURES) <= set(report.skipped)
    assert "Not shown" in report.index.read_text()


def test_an_empty_or_missing_study(tmp_path):
    with pytest.raises(RecordError, match="does not exist"):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    report = build_report(tmp_path / "empty")
    assert report.index.is_file() and report.errors == {}
    assert "counts" in report.skipped and "table1" in report.skipped


def test_cli(partial_study, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli-report"
    monkeypatch.setattr(sys, "argv", ["complaw", "report", str(partial_study), "--out", str(out)])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(out / "index.html")
    monkeypatch.setattr(sys, "argv", ["complaw", "report", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as bad:
        main()
    assert bad.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1


def test_numbers_are_finite_in_the_law_tables(full_report):
    for name in ("table1", "table2", "table3", "table4", "table6"):
        t = _table(full_report, name)
        assert np.isfinite(t["aic"]).all() and np.isfinite(t["adj_r2_centered"]).all()


def test_law_tables_flag_a_coefficient_at_its_bound():
    """RFT that recovers faster than the degradation form's c may (c <= 5) pins c there."""
    import numpy as np
    import pandas as pd

    from complaw.laws import fit, get_form
    from complaw.report.analysis import FitSet
    from complaw.report.tables import _fit_rows

    r, D, L0 = (a.ravel() for a in np.meshgrid([0.1, 0.3, 0.5, 0.7, 0.9],
                                               [0.0, 256.0, 1024.0, 4096.0], [2.5, 3.0, 3.5]))
    truth = {"A": 12.0, "b": 1.3, "Dl": 2000.0, "c": 9.0}
    L = get_form("degradation").predict(truth, {"L0": L0, "r": r, "D": D})
    noise = np.exp(np.random.default_rng(0).normal(0.0, 0.01, len(L)))
    steep = pd.DataFrame({"model": "m", "method": "prunenet", "calibration": "none",
                          "dataset": "ptb", "metric": "loss", "L": L * noise, "L0": L0, "r": r,
                          "D": D})
    pinned = fit(steep, "degradation").only()
    assert pinned.at_bounds == ["c"]
    data, display, notes = _fit_rows([FitSet("intrinsic", "degradation", (), "all rows",
                                             [pinned])], lambda f, kind: None)
    assert data["at_bounds"].tolist() == ["c"]
    assert display["c [95% CI]"].iloc[0].endswith("(at bound)")
    assert "at bound" not in display["A [95% CI]"].iloc[0]
    assert any("at a bound" in n and "degradation" in n and ": c" in n for n in notes)
    # rows of one RFT size: c and D_l are held (no recovery claimed), flagged, not at a bound
    held = fit(steep[steep["D"] == 0], "degradation").only()
    assert held.at_bounds == []
    _, display, notes = _fit_rows([FitSet("intrinsic", "degradation", (), "D = 0",
                                          [held])], lambda f, kind: None)
    assert display["c [95% CI]"].iloc[0].endswith("(no evidence: held)")
    assert "held" not in display["A [95% CI]"].iloc[0]
    assert any("claims no recovery" in n for n in notes)
