"""The zero-shot and speed stages inside a study: records of the right shape, paired by
law_table, and a compressed model timed against its base."""

import json

from typer.testing import CliRunner

from complaw.cli import app
from complaw.experiment.records import law_table
from complaw.study.runner import run_study
from complaw.study.spec import parse_spec

runner = CliRunner()


def test_extrinsic_and_speed_stages_in_a_study(tiny_smol_folder, shared_data, tmp_path):
    spec = parse_spec({
        "models": [str(tiny_smol_folder)], "ratios": [0.5], "methods": [{"name": "prunenet"}],
        "evaluations": {
            "extrinsic": {"tasks": ["arc_easy"], "limit": 5, "options": {"batch_size": 4}},
            "speed": {"options": {"prompt_len": 16, "new_tokens": 4, "repeats": 2}},
        },
    })
    summary = run_study(spec, tmp_path / "s", progress=False, data_dir=shared_data)
    assert (summary.done, summary.failed) == (4, 0), summary.failures
    records = [json.loads(p.read_text()) for p in (tmp_path / "s" / "records").glob("*.json")]
    kinds = {(r["config"]["eval"]["kind"], r["config"]["compression"] is None): r
             for r in records}
    zero_shot = kinds[("extrinsic", False)]
    tasks = {m["dataset"]: m for m in zero_shot["metrics"] if m["metric"] == "accuracy"}
    assert tasks["arc_easy"]["limit"] == 5 and 0 <= tasks["arc_easy"]["value"] <= 1
    assert zero_shot["config"]["eval"]["options"] == {"batch_size": 4, "num_fewshot": 0}
    [speedup] = [m for m in kinds[("speed", False)]["metrics"]
                 if m["metric"] == "speedup" and m["dataset"] == "decode"]
    assert speedup["baseline"] == str(tiny_smol_folder) and speedup["value"] > 0
    assert speedup["ideal"] > 1  # a pruned FFN needs fewer FLOPs per token
    assert not [m for m in kinds[("speed", True)]["metrics"] if m["metric"] == "speedup"]
    table = law_table(tmp_path / "s")
    assert {"accuracy", "runtime"} <= set(table["metric"])
    assert (table.loc[table["metric"] == "accuracy", "r"] == 0.5).all()


def test_cli_and_study_write_the_same_record(tiny_smol_folder, shared_data, tmp_path):
    """`complaw evaluate` / `complaw speed` and a study, with the same settings, build the same
    experiment: the same config and the same record id, for the base model and for the study's
    compressed checkpoint."""
    spec = parse_spec({
        "models": [str(tiny_smol_folder)], "ratios": [0.5], "methods": [{"name": "prunenet"}],
        "evaluations": {
            "extrinsic": {"tasks": ["arc_easy"], "limit": 3, "options": {"batch_size": 4}},
            "speed": {"options": {"prompt_len": 8, "new_tokens": 2, "repeats": 1}},
        },
    })
    study = tmp_path / "s"
    summary = run_study(spec, study, progress=False, data_dir=shared_data, keep_checkpoints=True)
    assert (summary.done, summary.failed) == (4, 0), summary.failures
    (checkpoint,) = (study / "checkpoints").iterdir()
    cli = tmp_path / "cli"
    for model, baseline in ((str(tiny_smol_folder), []),
                            (str(checkpoint), ["--baseline", str(tiny_smol_folder)])):
        result = runner.invoke(app, [
            "evaluate", "--model", model, "--tasks", "arc_easy", "--limit", "3",
            "--batch-size", "4", "--data-dir", str(shared_data), "--out", str(cli)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, [
            "speed", "--model", model, *baseline, "--prompt-len", "8", "--new-tokens", "2",
            "--repeats", "1", "--out", str(cli)])
        assert result.exit_code == 0, result.output
    by_cli = {p.name: json.loads(p.read_text())["config"] for p in cli.glob("*.json")}
    by_study = {p.name: json.loads(p.read_text())["config"]
                for p in (study / "records").glob("*.json")}
    assert len(by_cli) == 4 and by_cli == by_study
