"""`complaw recover` → `complaw evaluate` → `law_table`: a recovered model's record has its D."""

from __future__ import annotations

import inspect
import json
from dataclasses import fields

import pytest
from tests.unit.recover.recover_fixtures import SEQ
from typer.testing import CliRunner

from complaw.cli import app, main
from complaw.cli.recover import recover_command
from complaw.config import LoraOptions, Recovery
from complaw.experiment.records import law_table

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def recover_args(model, out, tokens=256):
    return ["recover", "--model", model, "--data", "ptb", "--tokens", tokens, "--seq-len", SEQ,
            "--batch-size", 2, "--lr", "5e-3", "--device", "cpu", "--out", out]


def evaluate(model, out):
    invoke("evaluate", "--model", model, "--data", "ptb:test", "--seq-len", 16,
           "--max-tokens", 256, "--out", out)


def test_recovered_records_carry_compression_and_recovery(tiny_checkpoint, tiny_pruned,
                                                         tiny_data_dir, tmp_path):
    pruned = tiny_pruned
    shown = invoke(*recover_args(pruned, tmp_path / "pruned-rft"))
    for text in ("tokens (D)", "256", "train loss", "tok/s", "peak memory"):
        assert text in shown.output
    invoke(*recover_args(tiny_checkpoint, tmp_path / "dense-rft", tokens=128))

    runs = tmp_path / "runs"
    for model in (tiny_checkpoint, pruned, tmp_path / "pruned-rft", tmp_path / "dense-rft"):
        evaluate(model, runs)
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    recovered = next(r for r in records if r["config"]["recovery"]
                     and r["config"]["compression"])
    assert recovered["config"]["model"] == str(tiny_checkpoint)
    assert recovered["config"]["compression"]["method"] == "prunenet"
    assert recovered["config"]["recovery"]["tokens"] == 256
    assert recovered["config"]["recovery"]["dataset"] == "ptb:train"
    assert "stats" not in recovered["config"]["recovery"]  # run statistics are no config

    table = law_table(runs).sort_values(["r", "D"]).to_dict("records")
    assert [(row["method"], row["r"], row["D"]) for row in table] == \
        [("none", 0.0, 128), ("prunenet", 0.5, 0), ("prunenet", 0.5, 256)]
    assert len({row["L0"] for row in table}) == 1
    assert table[2]["L"] == recovered["metrics"][0]["value"]


@pytest.mark.parametrize(("args", "words"), [
    (["--tokens", "-1"], "negative"),
    (["--tokens", "64", "--data", "ptb:test"], "test split"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, words, tiny_checkpoint, tiny_data_dir,
                                              tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    argv = ["complaw", "recover", "--model", str(tiny_checkpoint), "--out", str(out), *args]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not out.exists()


def test_cli_defaults_and_help_are_the_configs():
    """Every field of Recovery and LoraOptions is an option of `complaw recover` with the
    field's default and help text."""
    params = inspect.signature(recover_command).parameters
    cli_name = {"dataset": "data"}
    for f in [*fields(Recovery), *fields(LoraOptions)]:
        if f.name == "options":
            continue
        option = params[cli_name.get(f.name, f.name)].default
        default = tuple(option.default.split(",")) if f.name == "targets" else option.default
        assert (default, option.help) == (f.default, f.metadata["help"]), f.name
