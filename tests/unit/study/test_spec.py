"""Spec validation (errors name the key path and the allowed values) and grid expansion."""

import pytest
from typer.testing import CliRunner

from complaw.cli import app
from complaw.errors import ConfigError
from complaw.study.grid import expand
from complaw.study.spec import load_spec, parse_spec

EVAL = {"intrinsic": {"data": ["ptb:test"]}}


def spec(**changes):
    return {"models": ["m"], "evaluations": EVAL, **changes}


@pytest.mark.parametrize(("data", "message"), [
    (spec(methods=[{"name": "prunenet", "colour": 1}]),
     r"methods\[0\]\.colour: unknown key; allowed keys: name, options, calibration, models, "
     r"ratios"),
    (spec(recovery={"datasets": ["ptb"], "budget": [1]}),
     r"recovery\.budget: unknown key; allowed keys: datasets, samples, seq_len, options"),
    (spec(dtype="float64"), r"dtype: Input should be 'float32', 'bfloat16' or 'float16'"),
    (spec(ratios=[0.3, 30]), r"ratios: .*\[0, 1\)"),
    (spec(recovery={"samples": [0, -1]}), r"recovery\.samples: .*>= 0"),
    ({"evaluations": EVAL}, r"models: required key is missing"),
    (spec(evaluations={"intrinsic": {"data": ["ptb"], "colour": 1}}),
     r"evaluations\.intrinsic: .*unknown field\(s\) colour for Intrinsic; valid fields: data"),
    (spec(evaluations={"extrinsic": {"tasks": ["piqa"], "limit": "ten"}}),
     r"evaluations\.extrinsic: .*field limit='ten' for Extrinsic must be"),
    (spec(design={"metric": "perplexity"}),
     r"design\.metric: .*unknown metric 'perplexity'; known: accuracy, loss, runtime, task_loss"),
])
def test_spec_errors_name_the_key_path(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(data)


@pytest.mark.parametrize(("data", "message"), [
    (spec(methods=[{"name": "prunet"}], ratios=[0.3]),
     r"methods\[0\]: unknown compression method 'prunet'; known: layerdrop, prunenet, slicegpt"),
    (spec(methods=[{"name": "prunenet", "options": {"policy": "best"}}], ratios=[0.3]),
     r"methods\[0\]: unknown PruneNet policy 'best'; known: learned, magnitude, random"),
    (spec(evaluations={"nonsense": {}}), r"evaluations\.nonsense: unknown stage 'nonsense'"),
    (spec(evaluations={"intrinsic": {"data": []}}),
     r"evaluations\.intrinsic: intrinsic evaluation needs at least one dataset"),
    (spec(methods=[{"name": "prunenet", "models": ["x"]}], ratios=[0.3]),
     r"methods\[0\]\.models: x not in models; allowed: m"),
    (spec(resources={"compres": {"cpus": 2}}),
     r"resources: compres is no stage of this study; allowed: intrinsic"),
    (spec(methods=[{"name": "prunenet"}], ratios=[0.3], plugins=["tests.unit.study.stub_stages"],
          evaluations={"tick": {}}),
     r"stage 'tick' cannot read the output of 'compress'; it reads model"),
])
def test_registry_errors_name_the_key_path(data, message):
    with pytest.raises(ConfigError, match=message):
        expand(parse_spec(data))


def test_the_paper_grid_counts_table_5():
    """Table 5 of the paper counts an experiment per (model, method, ratio, RFT, evaluation):
    Qwen-2.5: 5 models x 1 method (prunenet) x 5 ratios x (3 datasets x 3 sizes + no RFT)
    x 2 evaluations (intrinsic, extrinsic) = 500; LLaMA-3: 3 models x 2 methods x 5 x 10 x 2
    = 600; 1,100 in all, plus 8 models x 2 evaluations = 16 uncompressed baselines."""
    grid = expand(load_spec("paper"))
    experiments = list(grid.experiments.values())
    compressed = [e for e in experiments if e.compression is not None]
    qwen = [e for e in compressed if e.model.startswith("Qwen/")]
    assert (len(qwen), len(compressed) - len(qwen)) == (500, 600)
    assert len(experiments) == 1100 + 16
    assert {e.compression.method for e in qwen} == {"prunenet"}
    assert sum(e.recovery is None for e in compressed) == 1100 // 10  # D = 0: one in ten
    # Stage executions: each compressed checkpoint is made once (5 x 5 + 3 x 2 x 5 = 55) and
    # shared by its 9 recoveries and all evaluations; D = 0 runs no recovery.
    assert grid.counts() == {"compress": 55, "recover": 495, "intrinsic": 558, "extrinsic": 558}


def test_dry_run_and_unknown_stages(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--dry-run"])  # no spec: the shipped quickstart
    assert result.exit_code == 0, result.output
    assert "experiments" in result.output and "recover" in result.output
    result = runner.invoke(app, ["run", "paper", "--dry-run"])
    assert "1,116" in result.output and "compress" in result.output
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [m]\nevaluations: {intrinsik: {}}\n")
    result = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "s")])
    assert isinstance(result.exception, ConfigError)
    assert "unknown stage 'intrinsik'" in str(result.exception)
    assert "did you mean 'intrinsic'" in str(result.exception)
    assert not (tmp_path / "s").exists()  # nothing runs (or is written) before the check


def test_seeds_repeat_compressed_experiments_and_d0_runs_no_recovery():
    data = spec(ratios=[0.3], methods=[{"name": "prunenet"}], seeds=[0, 1],
                recovery={"datasets": ["ptb"], "samples": [0, 8, 16], "seq_len": 32})
    grid = expand(parse_spec(data))
    # baseline once; per seed: 1 compression x (D = 0, 8, 16) x 1 evaluation
    assert len(grid.experiments) == 1 + 2 * 3
    assert grid.counts() == {"intrinsic": 7, "compress": 2, "recover": 4}
    recovered = [n for n in grid.nodes.values() if n.stage == "recover"]
    assert {n.step.tokens for n in recovered} == {8 * 32, 16 * 32}
    assert all(grid.nodes[n.parent].stage == "compress" for n in recovered)


def test_speed_runs_on_base_and_compressed_models_only():
    data = spec(ratios=[0.3, 0.5], methods=[{"name": "prunenet"}],
                recovery={"datasets": ["ptb"], "samples": [0, 8], "seq_len": 32},
                evaluations={"intrinsic": {"data": ["ptb:test"]}, "speed": {}})
    grid = expand(parse_spec(data))
    # intrinsic: base + 2 ratios x (D = 0, 8); speed: base + 2 compressed (recovery keeps shapes)
    assert grid.counts() == {"compress": 2, "recover": 2, "intrinsic": 5, "speed": 3}
    assert all(e.recovery is None for e in grid.experiments.values() if e.eval.kind == "speed")


def test_an_evaluation_can_stay_off_recovered_models():
    data = spec(ratios=[0.3], methods=[{"name": "prunenet"}],
                recovery={"datasets": ["ptb"], "samples": [0, 8, 16], "seq_len": 32},
                evaluations={"intrinsic": {"data": ["ptb:test"]},
                             "extrinsic": {"tasks": ["arc_easy"], "recovered": False}})
    grid = expand(parse_spec(data))
    assert grid.counts() == {"compress": 1, "recover": 2, "intrinsic": 4, "extrinsic": 2}


def test_zero_shot_on_some_ratios_and_models_and_task_loss_where_it_is_not():
    data = spec(models=["a", "b"], ratios=[0.1, 0.2, 0.3], methods=[{"name": "prunenet"}],
                recovery={"datasets": ["ptb"], "samples": [0, 16], "seq_len": 32},
                evaluations={"extrinsic": {"tasks": ["arc_easy"], "limit": 5,
                                           "ratios": [0.1, 0.3], "models": ["a"]},
                             "task_loss": {"tasks": ["arc_easy"], "limit": 5}})
    grid = expand(parse_spec(data))
    where = sorted((e.model, e.eval.kind, e.compression.ratio if e.compression else 0.0,
                    e.recovery is not None) for e in grid.experiments.values())
    zero_shot = [w for w in where if w[1] == "extrinsic"]
    # model a: its base and r = 0.1, 0.3 at D = 0 and 16 samples; model b: none
    assert zero_shot == [("a", "extrinsic", 0.0, False), ("a", "extrinsic", 0.1, False),
                         ("a", "extrinsic", 0.1, True), ("a", "extrinsic", 0.3, False),
                         ("a", "extrinsic", 0.3, True)]
    # task loss alone everywhere else: model a at r = 0.2 (x2), model b everywhere (1 + 3 x 2)
    assert grid.counts()["task_loss"] == 2 + 7
    assert ("a", "task_loss", 0.2, True) in where and ("b", "task_loss", 0.0, False) in where
    data["evaluations"]["extrinsic"]["models"] = ["c"]
    with pytest.raises(ConfigError, match=r"evaluations.extrinsic.models: c not in models"):
        expand(parse_spec(data))


def test_a_design_fits_any_registered_metric():
    assert parse_spec(spec(design={"metric": "task_loss"})).design.metric == "task_loss"
