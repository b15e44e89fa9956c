"""CLI: fit, predict, critical, plan, laws (rich tables, and --json that parses)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from complaw.cli import app, main

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def csv(tmp_path, acc_table, loss_table) -> str:
    path = tmp_path / "records.csv"
    pd.concat([acc_table, loss_table]).to_csv(path, index=False)
    return str(path)


def test_fit_json(csv):
    out = json.loads(run("fit", csv, "--form", "eq1", "--json", "--bootstrap", "50").stdout)
    assert [f["metric"] for f in out] == ["accuracy", "loss"]
    acc = out[0]
    assert {"form", "group", "feasible", "n", "coefficients", "heldout"} <= set(acc)
    assert acc["form"] == "eq1" and acc["feasible"] is False and acc["heldout"] is None
    for name in ("alpha", "beta", "gamma"):
        c = acc["coefficient_stats"][name]
        assert {"estimate", "stderr", "ci", "bootstrap_ci"} <= set(c)
        assert c["ci"][0] < c["estimate"] < c["ci"][1]
        assert acc["coefficients"][name] == c["estimate"]
    assert acc["r2_kind"] == "uncentered" and acc["intercept"] is False
    assert acc["adj_r2"] == acc["adj_r2_uncentered"]


def test_fit_heldout_json_schema(csv):
    out = json.loads(run("fit", csv, "--form", "eq1", "--holdout", "r:0.5", "--json").stdout)
    h = out[0]["heldout"]
    assert {"split", "n", "mape_pct", "degradation_mape_pct", "coverage", "abs_error_points",
            "noise_floor_points"} <= set(h)
    assert h["split"] == "r:0.5" and h["n"] == 64 and 0 < h["mape_pct"] < 10
    assert 0.5 <= h["coverage"] <= 1


def test_fit_by_model_table_and_compare(csv):
    out = run("fit", csv, "--by", "model").stdout
    assert "metric=" not in out and "model=m0" in out and "model=m7" in out
    assert "goodness of fit" in out
    out = json.loads(run("fit", csv, "--by", "model", "--json").stdout)
    assert len(out) == 16 and {f["group"]["model"] for f in out} == {f"m{i}" for i in range(8)}
    both = json.loads(run("fit", csv, "--compare", "--holdout", "D", "--json").stdout)
    assert {"eq1", "eq2", "eq3", "additive", "degradation", "retention"} <= {
        f["form"] for f in both}
    for metric in ("accuracy", "loss"):
        mine = [f for f in both if f["group"]["metric"] == metric]
        assert [f["rank"] for f in mine] == list(range(1, len(mine) + 1))
        mapes = [f["heldout"]["mape_pct"] for f in mine if f["heldout"]["mape_pct"] is not None]
        assert mapes == sorted(mapes) and mine[0]["form"] == "eq1"  # the true form wins
    text = run("fit", csv, "--compare").stdout
    assert "ranked by held-out MAPE (r:0.5)" in text and "degradation" in text


def test_fit_reads_several_tables_as_one(csv, tmp_path):
    """Two studies' rows fit together: a measurement both hold (model m3) counts once."""
    df = pd.read_csv(csv)
    halves = []
    for name, models in (("a", ["m0", "m1", "m2", "m3"]), ("b", ["m3", "m4", "m5", "m6", "m7"])):
        halves.append(str(tmp_path / f"{name}.csv"))
        df[df["model"].isin(models)].to_csv(halves[-1], index=False)
    args = ("--form", "eq1", "--by", "metric", "--holdout", "model", "--json")
    whole = json.loads(run("fit", csv, *args).stdout)
    both = json.loads(run("fit", *halves, *args).stdout)
    assert [f["n"] for f in both] == [f["n"] for f in whole] == [160, 160]
    for a, b in zip(both, whole, strict=True):
        assert a["coefficients"] == pytest.approx(b["coefficients"], rel=1e-12)
        assert a["heldout"]["by_level"] == pytest.approx(b["heldout"]["by_level"])


def test_fit_then_predict_from_the_json(csv, tmp_path):
    path = tmp_path / "fits.json"
    path.write_text(run("fit", csv, "--json").stdout)
    out = json.loads(
        run(
            "predict", "--law", f"{path}#fit:eq1:accuracy", "--L0", "0.6", "--r", "0.3", "--json"
        ).stdout
    )
    p = out["predictions"][0]
    assert p["ci"][0] < p["L"] < p["ci"][1]
    assert p["pi"][0] < p["ci"][0] and p["ci"][1] < p["pi"][1]


def test_predict_from_records_uses_the_best_heldout_form(csv):
    from complaw.laws import compare, get_form, read_table

    out = json.loads(run("predict", "--records", csv, "--where", "metric=loss", "--L0", "2.5",
                         "--r", "0.3", "--D", "1000", "--json").stdout)
    rows = read_table(csv)
    ranked = compare(rows[rows["metric"] == "loss"]).frame()
    best = ranked[ranked["feasible"]].iloc[0]  # the rows are Eq. 1's: the best feasible form
    assert out["form"] == best["form"] and get_form(out["form"]).feasible
    assert out["heldout"]["split"] == "r:0.5"
    assert out["heldout"]["mape_pct"] == pytest.approx(best["mape_pct"])
    named = json.loads(run("predict", "--records", csv, "--where", "metric=loss", "--form",
                           "degradation", "--L0", "2.5", "--r", "0.3", "--json").stdout)
    assert named["form"] == "degradation" and named["predictions"][0]["pi"] is not None


def test_predict_published():
    out = json.loads(
        run(
            "predict",
            "--law",
            "paper:llama-3-8b:extrinsic",
            "--L0",
            "0.62",
            "--r",
            "0.1",
            "--r",
            "0.5",
            "--D",
            "0",
            "--D",
            "25000",
            "--json",
        ).stdout
    )
    assert len(out["predictions"]) == 4
    first = out["predictions"][0]
    assert first["L"] == pytest.approx(0.62**0.98 * 1.1**-1.18 * 2**-0.14)
    assert first["ci"] is None
    text = run("predict", "--law", "paper:llama-3-8b:extrinsic", "--L0", "0.62", "--r", "0.1")
    assert "0.5076" in text.stdout


def test_critical():
    out = json.loads(
        run(
            "critical",
            "--law",
            "paper:llama-3-8b:extrinsic",
            "--sigma",
            "0.8",
            "--r",
            "0.15",
            "--r",
            "0.3",
            "--json",
        ).stdout
    )
    assert out["critical"]["r_crit"] == pytest.approx(0.208, abs=5e-4)
    assert out["critical"]["threshold_2_beta"] == pytest.approx(0.441, abs=5e-4)
    assert [b["regime"] for b in out["min_rft"]] == ["finite", "impossible"]
    text = run("critical", "--law", "paper:llama-3-8b:extrinsic", "--sigma", "0.8").stdout
    assert "r_crit" in text and "0.208" in text


def test_plan(tmp_path):
    spec = {
        "target": {"metric": "accuracy", "retention": 0.8},
        "budget": {"max_params": 4.0e9, "rft_tokens": 25000},
        "candidates": [
            {"name": "llama-3-8b", "params": 8.0e9, "L0": {"accuracy": 0.62}},
            {"name": "llama-3.2-3b", "params": 3.2e9, "L0": {"accuracy": 0.55}},
        ],
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = json.loads(run("plan", str(path), "--json").stdout)
    assert out["choices"] and out["choices"][0]["model"] == "llama-3.2-3b"
    assert "llama-3-8b" in out["infeasible"]
    text = run("plan", str(path), "--top", "3").stdout
    assert "llama-3.2-3b" in text and "infeasible" in text


def test_laws_listing():
    names = [w["name"] for w in json.loads(run("laws", "--json").stdout)]
    assert "paper:runtime:qwen-2.5-14b" in names and len(names) == 44
    text = run("laws", "--contains", "runtime").stdout
    assert "paper:all:intrinsic" not in text and "-1.62" in text


def test_forms_listing_reads_the_registries():
    from complaw.laws.forms import FORMS
    from complaw.laws.metrics import METRICS, Metric

    METRICS.add("perplexity", Metric("perplexity", "intrinsic", "loss", False, "eq2",
                                     "test perplexity", "exp nats"))
    try:
        out = json.loads(run("forms", "--json").stdout)
    finally:
        METRICS._items.pop("perplexity")
    forms = {f["form"]: f for f in out["forms"]}
    assert set(forms) == set(FORMS)
    # a metric of the loss family is modelled by the loss forms, never by accuracy-only ones
    assert "perplexity" in forms["onset"]["metrics"] and forms["onset"]["feasible"]
    assert "perplexity" not in forms["retention"]["metrics"]
    metrics = {m["metric"]: m for m in out["metrics"]}
    assert metrics["perplexity"]["default_form"] == "eq2"
    assert metrics["perplexity"]["pooled_form"] == "eq2"  # none declared: its own
    assert metrics["loss"]["pooled_form"] == "plateau"
    assert metrics["accuracy"]["reference_form"] == "eq2"
    assert "two-step" in run("forms").stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["critical", "--law", "paper:llama-3-8b:extrinsic", "--sigma", "1.2"], "sigma = 1.2"),
        (["predict", "--law", "paper:nope", "--L0", "1", "--r", "0.1"], "no published law"),
        (["predict", "--law", "paper:all:intrinsic", "--L0", "2", "--r", "30"], "[0, 1)"),
        (["fit", "missing.csv"], "do not exist"),
    ],
)
def test_errors_are_one_line_exit_2(monkeypatch, capsys, args, needle):
    monkeypatch.setattr(sys, "argv", ["complaw", *args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err
    assert err.startswith("error:")


def test_bad_records_error(tmp_path, acc_table, monkeypatch, capsys):
    path = tmp_path / "bad.csv"
    acc_table.assign(r=acc_table["r"] * 100).to_csv(path, index=False)
    monkeypatch.setattr(sys, "argv", ["complaw", "fit", str(path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert "r must be in [0, 1)" in capsys.readouterr().err


def test_fit_reads_a_record_directory(tmp_path, acc_table, monkeypatch):
    import complaw.experiment.records as records

    monkeypatch.setattr(records, "law_table", lambda path: acc_table.copy())
    out = json.loads(run("fit", str(tmp_path), "--json").stdout)
    assert out[0]["n"] == len(acc_table)
    empty = acc_table.iloc[:0].copy()
    monkeypatch.setattr(records, "law_table", lambda path: empty)
    result = runner.invoke(app, ["fit", str(tmp_path)])
    assert result.exit_code != 0 and "no law rows" in str(result.exception)


def test_fit_a_study_folder_with_speed_records(tmp_path, monkeypatch):
    """A study's records hold throughput rows no law models: they are named and left out, and
    every metric a law exists for is fitted with its default form."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "report"))
    from report_synth import make_study

    study = make_study(tmp_path / "s", speed=True)
    result = CliRunner().invoke(app, ["fit", str(study), "--json"])
    assert result.exit_code == 0, result.output
    fits = json.loads(result.stdout)
    assert {(f["group"]["metric"], f["form"]) for f in fits} == {
        ("loss", "eq1"), ("accuracy", "eq1"), ("runtime", "runtime")}
    assert "skipped metrics without a law: throughput" in result.stderr
