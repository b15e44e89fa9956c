"""`complaw plan --verify`: the top choice is compressed, recovered and evaluated with the
settings of the records' study, and predicted is set against measured (tiny real models)."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from complaw.cli import app
from complaw.errors import LawError
from complaw.experiment.records import law_table, load_law_table
from complaw.laws import load_plan, plan
from complaw.study.runner import run_study
from complaw.study.spec import parse_spec
from complaw.study.verify import verification_spec, verify_plan


@pytest.fixture
def source(tiny_checkpoint, tiny_data_dir, tmp_path):
    """A small study of a tiny model: PruneNet at five ratios, RFT of 0, 32 and 128 tokens."""
    spec = parse_spec({
        "models": [str(tiny_checkpoint)],
        "ratios": [0.1, 0.3, 0.5, 0.7, 0.9],
        "methods": [{"name": "prunenet"}],
        "recovery": {"datasets": ["ptb:train"], "samples": [0, 2, 8], "seq_len": 16,
                     "options": {"lr": 1.0e-3, "batch_size": 2}},
        # restricted to the study's ratios (as results/cpu-grid's zero-shot is): the
        # verification must still evaluate the planned ratio, which is off that list
        "evaluations": {"intrinsic": {"data": ["ptb:test"], "seq_len": 16,
                                      "max_tokens": 128, "ratios": [0.1, 0.3, 0.5, 0.7, 0.9]}},
    })
    study = tmp_path / "source"
    summary = run_study(spec, study, progress=False)
    assert summary.failed == 0
    return study


@pytest.fixture
def plan_file(source, tiny_checkpoint, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({
        "records": str(source),
        "target": {"metric": "loss", "value": 1.0e3},
        "budget": {"rft_tokens": 64},
        "objective": "smallest",
        "ratios": [0.2, 0.4],
        "candidates": [{"name": str(tiny_checkpoint), "params": 1.0e6, "form": "onset",
                        "where": {"method": "prunenet", "dataset": "ptb:test"}}],
    }))
    return path


def test_verification_runs_the_top_choice_with_the_source_settings(plan_file, tmp_path):
    spec = load_plan(plan_file)
    result = plan(spec, load_law_table(spec.records))
    top = result.choices[0]
    assert (top.r, top.form) == (0.4, "onset")  # smallest: the largest ratio
    study = verification_spec(spec, top)
    assert study["ratios"] == [0.4] and [m["name"] for m in study["methods"]] == ["prunenet"]
    assert study["evaluations"]["intrinsic"]["recovered"] is True  # also on the planned D
    assert study["recovery"]["samples"] == [0] or study["recovery"]["samples"][0] * 16 >= \
        top.D_needed
    out = tmp_path / "verify"
    found = verify_plan(spec, result, out, progress=False)
    record = json.loads((out / "verify.json").read_text())
    assert record == found.to_dict()
    assert record["run"] == {"model": top.model, "dataset": "ptb:test", "method": "prunenet",
                             "r": 0.4, "D": found.D, "study": str(out)}
    rows = law_table(out)
    measured = rows[(rows["r"] == 0.4) & (rows["D"] == found.D)]
    assert len(measured) == 1 and found.measured == measured["L"].iloc[0]
    law = result.laws[top.model]
    pred = law.predict(top.L0, 0.4, found.D)
    assert found.predicted == pytest.approx(pred.L[0])
    lo, hi = found.interval
    assert (lo, hi) == pytest.approx((pred.pi_low[0], pred.pi_high[0]))
    assert found.in_interval == (lo <= found.measured <= hi)
    assert found.target_met == (found.measured <= 1.0e3) is True
    # the measured L0 is the source study's (the same base, data and settings)
    assert found.L0 == pytest.approx(top.L0)


def test_verify_cli_and_its_errors(plan_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["plan", str(plan_file), "--verify"])
    assert result.exit_code != 0 and "--verify needs --out" in str(result.exception)
    out = tmp_path / "v"
    result = runner.invoke(app, ["plan", str(plan_file), "--verify", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["verify"]["run"]["r"] == payload["choices"][0]["r"]
    csv = tmp_path / "rows.csv"
    source = load_plan(plan_file).records
    law_table(source).to_csv(csv, index=False)
    spec = load_plan(plan_file)
    spec.records = str(csv)
    with pytest.raises(LawError, match="spec.yaml"):
        verify_plan(spec, plan(spec, load_law_table(spec.records)), tmp_path / "w",
                    progress=False)
