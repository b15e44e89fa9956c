"""Adaptive studies on a tiny real model: only the chosen experiments run, the design is rebuilt
from the records (a study killed mid-batch resumes with the same batch), status, replay, and
bad input that writes nothing."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from complaw.cli import app, main
from complaw.experiment.folder import StudyFolder
from complaw.study.adaptive import design_status, run_adaptive
from complaw.study.grid import expand
from complaw.study.pool import build_pool
from complaw.study.spec import parse_spec

QUICKSTART = "tests/unit/data/quickstart"


@pytest.fixture
def spec_dict(tiny_checkpoint, tiny_data_dir):
    return {
        "models": [str(tiny_checkpoint)],
        "ratios": [0.2, 0.4, 0.6, 0.8],
        "methods": [{"name": "prunenet"}],
        "recovery": {"datasets": ["ptb:train"], "samples": [0, 1, 2], "seq_len": 16,
                     "options": {"batch_size": 1}},
        "evaluations": {"intrinsic": {"data": ["ptb:test", "ptb:valid"], "seq_len": 16,
                                      "max_tokens": 64}},
        "design": {"budget": 0.7, "batch": 2},
    }


@pytest.fixture
def finished(spec_dict, tmp_path):
    """An adaptive study run to its end."""
    spec = parse_spec(spec_dict)
    out = tmp_path / "study"
    return spec, out, run_adaptive(spec, out, progress=False)


def fails(argv, monkeypatch, capsys) -> str:
    """Run `complaw ARGV` as the console script does; assert it fails with one line (exit 2)
    and return that line."""
    monkeypatch.setattr("sys.argv", ["complaw", *map(str, argv)])
    capsys.readouterr()  # what ran before
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def records_of(study, units, path):
    return {i for u in units for i in study.records[u]} & {p.stem for p in path.glob("*.json")}


def test_only_the_chosen_experiments_run_within_the_budget(finished, tmp_path, monkeypatch,
                                                            capsys):
    spec, out, result = finished
    last = result.steps[-1]
    assert last.stop == "the budget is spent"
    assert result.failed == 0 and result.done == len(list((out / "records").iterdir()))
    study = build_pool(expand(spec), StudyFolder(out))
    chosen = last.chosen
    assert len(chosen) == len(set(chosen)) < len(study.pool.units)
    written = {p.stem for p in (out / "records").glob("*.json")}
    assert written == {i for u in chosen for i in study.records[u]}
    assert last.spent <= last.budget
    assert list((out / "checkpoints").iterdir()) == []  # pruned at the end

    summary = json.loads((out / "design.json").read_text())
    assert [s["index"] for s in summary["steps"]] == [s.index for s in result.steps]
    assert summary["curve"] and all(0 < p["cost_fraction"] < 1 for p in summary["curve"])
    from complaw.report import build_report

    report = build_report(out)
    assert "design" in report.figures and (out / "report" / "figures" / "design.png").is_file()

    again = run_adaptive(spec, out, progress=False)  # everything is in the records
    assert sum(again.ran.values()) == 0 and again.steps[-1].chosen == chosen

    shown = CliRunner().invoke(app, ["status", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "adaptive design" in shown.output and "finished: the budget is spent" in shown.output
    assert "cost used" in shown.output and "CI width loss alpha" in shown.output

    # replay needs two experiments per coefficient: the seed design alone is too few
    few = tmp_path / "few"
    (few / "records").mkdir(parents=True)
    shutil.copy(out / "spec.yaml", few / "spec.yaml")
    for ident in records_of(study, result.steps[0].batch, out / "records"):
        shutil.copy(out / "records" / f"{ident}.json", few / "records")
    before = sorted(p.name for p in few.rglob("*"))
    assert "two experiments per coefficient" in fails(["design", "replay", few], monkeypatch,
                                                      capsys)
    assert sorted(p.name for p in few.rglob("*")) == before


def test_a_study_killed_mid_batch_resumes_with_the_same_batch(finished, tmp_path):
    spec, out, result = finished
    step = result.steps[2]  # the second batch the design chose after the seed
    assert len(step.batch) == 2
    study = build_pool(expand(spec), StudyFolder(out))
    killed = tmp_path / "killed"
    (killed / "records").mkdir(parents=True)
    shutil.copy(out / "spec.yaml", killed / "spec.yaml")
    shutil.copy(out / "log.jsonl", killed / "log.jsonl")
    done = step.chosen + step.batch[:1]  # killed after the first experiment of the batch
    for ident in records_of(study, done, out / "records"):
        shutil.copy(out / "records" / f"{ident}.json", killed / "records")

    status = design_status(killed, spec)
    assert not status.finished and status.step.index == step.index
    assert status.step.batch == step.batch and status.batch_done == 1

    resumed = run_adaptive(spec, killed, progress=False)
    assert resumed.steps[step.index].batch == step.batch
    # the first execution ran only the missing experiment of the batch, then went on
    assert resumed.done >= len(study.records[step.batch[1]])


def test_replay_on_the_default_study_records():
    runner = CliRunner()
    args = ["design", "replay", QUICKSTART, "--budget", "0.4", "--seeds", "3", "--by", "method",
            "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    payload = json.loads(first.output)
    assert payload == json.loads(runner.invoke(app, args).output)
    assert payload["adaptive"]["cost_fraction"] <= 0.4 and payload["random"]["seeds"] == 3
    assert payload["full"]["mape_pct"] > 0


@pytest.mark.parametrize("change, args, message", [
    ({}, ["--budget", "0"], "budget"),
    ({}, ["--budget", "1.5"], "budget"),
    ({"ratios": [0.5], "recovery": None}, [], "no law to fit"),
    ({"evaluations": {"speed": {}}}, [], "no law to fit"),
    ({}, ["--prior", "nowhere.csv"], "do not exist"),
    ({}, ["--prior", "tests/unit/data/quickstart"], "needs two models or more"),
])
def test_bad_adaptive_runs_write_nothing(spec_dict, tmp_path, change, args, message,
                                         monkeypatch, capsys):
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**spec_dict, **change}))
    out = tmp_path / "out"
    err = fails(["run", spec, "--out", out, "--design", "adaptive", *args], monkeypatch, capsys)
    assert message in err
    assert not out.exists()


def test_a_grid_simulated_from_each_models_published_law():
    """With no noise, a law per model recovers each model's Table 2 law exactly, so the full
    grid's and the adaptive law's errors are zero; with noise, they are judged against L and
    against the noise-free L."""
    from complaw.laws.published import get_law
    from complaw.study.replay import replay_simulated, simulate
    from complaw.study.spec import DesignSpec, load_spec

    spec = load_spec("paper").model_copy(update={"models": [
        "Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.2-1B"], "methods": load_spec("paper").methods[:1]})
    table, study = simulate(spec, "paper:{model}:intrinsic", noise=0.0)
    qwen = table[table["model"] == "Qwen/Qwen2.5-0.5B"].iloc[0]
    expected = get_law("paper:qwen-2.5-0.5b:intrinsic").predict(qwen["L0"], qwen["r"], qwen["D"])
    assert qwen["L"] == pytest.approx(expected.L[0])
    exact = replay_simulated(spec, "paper:{model}:intrinsic",
                             DesignSpec(budget=0.3, by=["model"]), noise=0.0, seeds=2).to_dict()
    assert exact["full"]["mape_pct"] < 1e-6 and exact["adaptive"]["mape_pct"] < 1e-6
    noisy = replay_simulated(spec, "paper:{model}:intrinsic",
                             DesignSpec(budget=0.3, by=["model"]), noise=0.05, seeds=2).to_dict()
    assert noisy["adaptive"]["truth_mape_pct"] < noisy["adaptive"]["mape_pct"]
    assert "truth_median_mape_pct" in noisy["random"]


def test_the_cli_runs_an_adaptive_design_with_flags_over_the_spec(spec_dict, tmp_path):
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({k: v for k, v in spec_dict.items() if k != "design"}))
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--design", "adaptive",
                                    "--budget", "0.5", "--batch", "3", "--no-report"])
    assert done.exit_code == 0, done.output
    assert "experiments chosen" in done.output and "the budget is spent" in done.output
    saved = yaml.safe_load((out / "spec.yaml").read_text())
    assert saved["design"]["budget"] == "0.5" and saved["design"]["batch"] == 3
    full = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--budget", "0.5"])
    assert full.exit_code != 0 and "--design adaptive" in str(full.exception or full.output)


def test_the_cpu_grid_records_replay_and_give_leave_one_model_out_errors(tmp_path):
    """results/cpu-grid holds the real three-model CPU grid (JSON records only): the design
    replays on its test-loss grid (finished for the three models; its zero-shot part is not
    yet), and a law fitted on two models predicts the third."""
    from pathlib import Path

    import yaml

    from complaw.experiment.records import load_law_table
    from complaw.laws import fit
    from complaw.study.replay import replay_study
    from complaw.study.spec import DesignSpec

    source = Path("results/cpu-grid")
    folder = tmp_path / "cpu-grid"
    (folder / "records").mkdir(parents=True)
    spec = yaml.safe_load((source / "spec.yaml").read_text())
    spec["evaluations"] = {"intrinsic": spec["evaluations"]["intrinsic"]}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(source / "log.jsonl", folder / "log.jsonl")
    for path in (source / "records").glob("*.json"):
        if json.loads(path.read_text())["config"]["eval"]["kind"] == "intrinsic":
            shutil.copy(path, folder / "records" / path.name)
    table = load_law_table(folder)
    assert table["model"].nunique() == 3 and len(table) >= 3 * 9 * 4 * 3 * 0.9
    result = replay_study(folder, DesignSpec(budget=0.25), seeds=3).to_dict()
    # the budget is a fraction of the grid's estimated cost; against the true cost of the
    # units never run, the estimate is off by a few per cent
    assert result["adaptive"]["cost_fraction"] <= 0.25 * 1.05 and result["adaptive"]["n"] > 10
    assert result["full"]["mape_pct"] <= result["adaptive"]["mape_pct"] * 1.05
    [law] = fit(table[table["metric"] == "loss"], "eq1", holdout="model")
    assert law.heldout["model"].n == len(table)  # every row predicted by the other models' law


def test_a_study_of_a_new_model_runs_the_design_its_prior_chooses(spec_dict, tmp_path):
    """`run --prior`: the baselines first, then the experiments `prior_design` picks for the
    new model from the prior's pooled law, each batch the one it picks given the rows so far;
    design.json and the report name the prior, and a rerun runs nothing."""
    import numpy as np
    import pandas as pd

    from complaw.experiment.records import base_table
    from complaw.laws import get_form
    from complaw.laws.prior import prior_design, prior_fit
    from complaw.study.pool import observed

    # the prior: two other models whose loss follows the degradation law, on the same data
    r, D = (a.ravel() for a in np.meshgrid([0.2, 0.4, 0.6, 0.8], [0.0, 16.0, 32.0]))
    rows = []
    for model, L0, A in (("prior-a", 4.0, 3.0), ("prior-b", 5.0, 4.0)):
        for dataset in ("ptb:test", "ptb:validation"):
            L = get_form("degradation").predict({"A": A, "b": 1.5, "Dl": 20.0, "c": 0.5},
                                                {"L0": np.full(len(r), L0), "r": r, "D": D})
            rows.append(pd.DataFrame({"model": model, "method": "prunenet",
                                      "calibration": "none", "dataset": dataset,
                                      "metric": "loss", "L": L, "L0": L0, "r": r, "D": D}))
    prior = tmp_path / "prior.csv"
    pd.concat(rows).to_csv(prior, index=False)

    spec = parse_spec({**spec_dict, "design": {"budget": 0.6, "batch": 1, "form": "degradation",
                                               "prior": str(prior), "share": ["b"]}})
    out = tmp_path / "new"
    result = run_adaptive(spec, out, progress=False)
    steps = result.steps
    study = build_pool(expand(spec), StudyFolder(out))
    assert steps[0].batch == [u for u in study.pool.units if u.startswith("base:")]
    assert steps[-1].stop.startswith(f"{spec.models[0]}: ") and result.failed == 0
    chosen = steps[-1].chosen
    assert 2 < len(chosen) < len(study.pool.units) and steps[-1].spent <= steps[-1].budget
    assert all(f"{spec.models[0]} c" in s.ci_widths() for s in steps[1:])

    # each batch is prior_design's choice given the rows of the batches before it
    from complaw.laws.design import design_rows

    fitted = prior_fit(pd.read_csv(prior), "loss", "degradation", ["b"])
    base = base_table(out)
    grid = design_rows(study.pool.points, base[base["metric"] == "loss"])
    assert (grid["N0"] > 0).all()  # the model's size, from its baseline's record, for a trend
    costs = study.pool.costs(steps[0].batch)
    paid = study.pool.paid(steps[0].batch)
    first = next(prior_design(
        fitted, grid, lambda u: observed(StudyFolder(out), study, u), lambda u, c:
        study.pool.cost_of(u, paid | study.pool.paid(c), costs), 1e12, batch=1))
    assert steps[1].batch == first.batch

    summary = json.loads((out / "design.json").read_text())
    assert summary["settings"]["prior"] == str(prior) and summary["form"] == "degradation"
    from complaw.report import build_report

    report = build_report(out)
    assert "prior" in report.tables, report.errors
    moved = pd.read_csv(out / "report" / "tables" / "prior.csv")
    assert set(moved["coef"]) == {"A", "b", "Dl", "c"} and set(moved["model"]) == {
        spec.models[0]}
    assert np.isfinite(moved["moved_sd"]).all()
    assert str(prior) in (out / "report" / "index.md").read_text()
    again = run_adaptive(spec, out, progress=False)
    assert sum(again.ran.values()) == 0 and again.steps[-1].chosen == chosen
