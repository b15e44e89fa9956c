"""The local runner on tiny real models (compress, intrinsic) and stub stages: reuse by
content id, isolation of failures, recovery from damaged records and checkpoints."""

import json
import re
import sys

import pytest
from typer.testing import CliRunner

import tests.unit.study.stub_stages  # noqa: F401  (registers the tick stage)
from complaw.cli import app, main
from complaw.experiment.folder import StudyFolder
from complaw.experiment.pipeline import experiment_of
from complaw.experiment.records import law_table
from complaw.study.runner import run_study, study_status
from complaw.study.spec import parse_spec
from tests.conftest import TINY, tiny_model


@pytest.fixture
def tiny_spec(tiny_checkpoint, tiny_data_dir):
    return parse_spec({
        "models": [str(tiny_checkpoint)],
        "ratios": [0.3, 0.5],
        "methods": [
            {"name": "prunenet"},
            {"name": "layerdrop", "calibration": {"data": "ptb:train", "samples": 4,
                                                  "seq_len": 16}, "ratios": [0.4]},
        ],
        "evaluations": {"intrinsic": {"data": ["ptb:test", "ptb:valid"], "seq_len": 16,
                                      "max_tokens": 128}},
    })


def log_lines(study):
    return [json.loads(line) for line in (study / "log.jsonl").read_text().splitlines()]


def test_grid_runs_once_shares_checkpoints_and_pairs_with_baselines(tiny_spec, tmp_path):
    study = tmp_path / "study"
    summary = run_study(tiny_spec, study, progress=False, keep_checkpoints=True)
    assert (summary.done, summary.failed) == (4, 0)  # baseline + 3 compressed
    assert summary.ran == {"compress": 3, "intrinsic": 4}
    assert len(list((study / "checkpoints").iterdir())) == 3
    table = law_table(study)  # a study folder: its records/
    assert len(table) == 3 * 2 and set(table["dataset"]) == {"ptb:test", "ptb:validation"}
    assert set(table["method"]) == {"prunenet", "layerdrop"}
    assert (table["L"] != table["L0"]).all()  # (a random tiny model: no direction expected)
    records = [json.loads(p.read_text()) for p in (study / "records").glob("*.json")]
    pruned = [r for r in records if (r["config"]["compression"] or {}).get("method")
              == "prunenet"]
    assert all(r["config"]["compression"]["options"] == {"policy": "random"} for r in pruned)
    assert all(0 < r["achieved"]["blocks"] < 1 for r in pruned)

    again = run_study(tiny_spec, study, progress=False)  # nothing identical twice ...
    assert sum(again.ran.values()) == 0 and again.pruned == 3  # ... and unused ckpts go
    assert list((study / "checkpoints").iterdir()) == []
    status = study_status(study)
    assert {k: (v.done, v.failed, v.pending) for k, v in status.items()} == {
        "intrinsic": (4, 0, 0), "compress": (3, 0, 0)}


def test_damaged_records_and_checkpoints_are_recomputed(tiny_spec, tmp_path):
    study = tmp_path / "study"
    run_study(tiny_spec, study, progress=False, keep_checkpoints=True)
    folder = StudyFolder(study)
    ckpt = next(p for p in (study / "checkpoints").iterdir())
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated weights
    consumer = next(n for n in tiny_spec_grid(tiny_spec).records() if n.parent == ckpt.name)
    folder.record_path(consumer.id).unlink()  # so that the checkpoint is needed again
    records = sorted((study / "records").glob("*.json"))
    records[0].write_text(records[0].read_text()[:50])  # truncated
    records[1].write_text('{"id": "someone else", "status": "ok"}')  # not its record
    half = study / "checkpoints" / f".{ckpt.name}.x1.tmp"  # an interrupted atomic write
    half.mkdir()
    (half / "complaw.json").write_text("{}")

    summary = run_study(tiny_spec, study, progress=False, keep_checkpoints=True)
    assert len(summary.problems) == 3
    assert any("truncated" in p for p in summary.problems)
    assert summary.ran["compress"] == 1 and summary.ran["intrinsic"] == 3
    assert not half.exists()
    for path in (study / "records").glob("*.json"):
        assert json.loads(path.read_text())["status"] == "ok"


def tiny_spec_grid(spec):
    from complaw.study.grid import expand

    return expand(spec)


def test_a_failing_experiment_is_recorded_and_the_others_complete(tmp_path):
    log = tmp_path / "runs.log"
    spec = parse_spec({
        "models": ["a", "bad", "nan", "d"],
        "plugins": ["tests.unit.study.stub_stages"],
        "evaluations": {"tick": {"options": {"log": str(log), "fail": ["bad"],
                                             "nan": ["nan"]}}},
    })
    study = tmp_path / "study"
    summary = run_study(spec, study, progress=False)
    assert (summary.done, summary.failed) == (2, 2)
    errors = dict(summary.failures)
    records = {r["config"]["model"]: r for r in
               (json.loads(p.read_text()) for p in (study / "records").glob("*.json"))}
    assert records["bad"]["status"] == "failed"
    assert "stub failure for bad" in records["bad"]["error"]
    assert records["nan"]["error"].startswith("FloatingPointError: metric loss on stub is nan")
    assert records["bad"]["id"] in errors and records["a"]["status"] == "ok"

    assert sum(run_study(spec, study, progress=False).ran.values()) == 0  # failures stay
    retried = run_study(spec, study, progress=False, retry_failed=True)
    assert retried.ran == {"tick": 2} and retried.failed == 2
    assert log.read_text().split() == ["a", "bad", "nan", "d", "bad", "nan"]

    result = CliRunner().invoke(app, ["status", str(study)])
    assert result.exit_code == 0 and "tick" in result.output
    [line] = [c for c in result.output.splitlines() if "tick" in c]
    assert re.findall(r"\d+", line) == ["2", "2", "0"]  # done, failed, pending


def test_a_failed_checkpoint_fails_its_experiments_with_its_error(tiny_checkpoint,
                                                                  tiny_data_dir, tmp_path):
    spec = parse_spec({
        "models": [str(tiny_checkpoint)], "ratios": [0.99],  # layerdrop cannot drop every layer
        "methods": [{"name": "layerdrop", "calibration": {"data": "ptb:train", "samples": 2,
                                                          "seq_len": 16}}],
        "evaluations": {"intrinsic": {"data": ["ptb:test"], "seq_len": 16, "max_tokens": 64}},
    })
    summary = run_study(spec, tmp_path / "s", progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    [(ident, error)] = summary.failures
    record = json.loads((tmp_path / "s" / "records" / f"{ident}.json").read_text())
    assert record["failed_stage"] == "compress" and "removes all 3 layers" in record["error"]
    status = study_status(tmp_path / "s")
    assert (status["compress"].failed, status["intrinsic"].failed) == (1, 1)


def test_run_command_reports_and_exits_nonzero_on_failures(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "models: [ok, bad]\nplugins: [tests.unit.study.stub_stages]\n"
        "evaluations: {tick: {options: {fail: [bad]}}}\n"
    )
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "1 experiment(s) done, 1 failed" in result.output
    assert "stub failure for bad" in result.output
    again = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "s")])
    assert "0 experiment(s) done, 0 failed; stage executions: nothing" in again.output


def test_recovery_stage_shares_one_checkpoint_and_gives_records_their_d(tiny_checkpoint,
                                                                        tiny_data_dir, tmp_path):
    spec = parse_spec({
        "models": [str(tiny_checkpoint)], "ratios": [0.5], "methods": [{"name": "prunenet"}],
        "recovery": {"datasets": ["ptb:train"], "samples": [0, 2, 4], "seq_len": 16,
                     "options": {"rank": 4, "lr": 1e-3, "batch_size": 2}},
        "evaluations": {"intrinsic": {"data": ["ptb:test"], "seq_len": 16, "max_tokens": 128}},
    })
    summary = run_study(spec, tmp_path / "s", progress=False)
    assert (summary.done, summary.failed) == (4, 0)  # baseline + D = 0, 32, 64
    assert summary.ran == {"compress": 1, "recover": 2, "intrinsic": 4}
    table = law_table(tmp_path / "s").sort_values("D")
    assert table["D"].tolist() == [0, 32, 64] and (table["r"] == 0.5).all()
    assert len(set(table["L"])) == 3  # each budget trained a different model
    records = [json.loads(p.read_text()) for p in (tmp_path / "s" / "records").glob("*.json")]
    [rec] = [r["config"]["recovery"] for r in records if (r["config"]["recovery"] or {})
             .get("tokens") == 64]
    assert rec["options"]["rank"] == 4 and rec["options"]["alpha"] == 32.0  # defaults resolved
    # `complaw evaluate` on the study's recovered checkpoint names the study's experiment
    grid = tiny_spec_grid(spec)
    [node] = [n for n in grid.records() if n.experiment.recovery is not None
              and n.experiment.recovery.tokens == 64]
    folder = StudyFolder(tmp_path / "s")
    assert not folder.checkpoint_path(node.parent).exists()  # pruned once every record was done
    run_study(spec, tmp_path / "again", progress=False, keep_checkpoints=True)
    recovered = StudyFolder(tmp_path / "again").checkpoint_path(node.parent)
    assert experiment_of(str(recovered), node.experiment.eval) == node.experiment


def test_checkpoints_go_as_soon_as_every_experiment_reading_them_is_done(tiny_spec, tmp_path,
                                                                        monkeypatch):
    import complaw.study.runner as runner

    monkeypatch.setattr(runner, "prune", lambda *args, **kwargs: 0)  # no clean-up at the end
    summary = run_study(tiny_spec, tmp_path / "study", progress=False)
    assert (summary.done, summary.pruned) == (4, 3)
    assert list((tmp_path / "study" / "checkpoints").iterdir()) == []


def test_ray_executor_without_ray_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [a]\nplugins: [tests.unit.study.stub_stages]\n"
                    "evaluations: {tick: {}}\n")
    monkeypatch.setattr(sys, "argv", ["complaw", "run", str(spec), "--out",
                                      str(tmp_path / "s"), "--executor", "ray"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the ray executor needs Ray")
    assert "pip install 'complaw[ray]'" in line
    assert not (tmp_path / "s").exists()  # refused before the study started


def test_infeasible_compressions_are_refused_before_anything_runs(tiny_checkpoint, tmp_path):
    gemma = tmp_path / "tiny-gemma3"
    tiny_model("gemma3").config.save_pretrained(gemma)  # a config is all the grid reads
    slicegpt = {"name": "slicegpt",  # 3 x 16 = 48 tokens, fewer than hidden_size
                "calibration": {"data": "ptb:train", "samples": 3, "seq_len": 16}}
    spec = {"models": [str(tiny_checkpoint), str(gemma)], "ratios": [0.25, 0.5],
            "methods": [{"name": "prunenet"}, slicegpt],
            "evaluations": {"intrinsic": {"data": ["ptb:test"], "seq_len": 16}}}
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))
    dry = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert re.search(r"refused compressions .*│ +4 │", dry.output)
    assert re.search(r"compress +│ +4 │", dry.output)  # prunenet's, on both models
    assert (f"refused: 2 compression(s) of {tiny_checkpoint}: method 'slicegpt' needs at least "
            f"{TINY['hidden_size']} calibration tokens") in dry.output
    assert f"refused: 2 compression(s) of {gemma}: method 'slicegpt' cannot compress gemma3" \
        in dry.output

    only_refused = {**spec, "methods": [slicegpt], "plugins": ["tests.unit.study.stub_stages"],
                    "evaluations": {"tick": {}}}
    summary = run_study(parse_spec(only_refused), tmp_path / "s", progress=False)
    assert summary.ran == {"tick": 2} and summary.done == 2  # the baselines only
    assert sorted(summary.refused.values()) == [2, 2]
