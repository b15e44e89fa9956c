"""`complaw compress` on tiny models saved as local folders."""

from __future__ import annotations

import json

import pytest
import torch
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from complaw.cli import app
from complaw.cli.compress import parse_option
from complaw.compress.checkpoint import MANIFEST
from complaw.errors import CompressionError, ConfigError, DataError, RecordError

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["compress", *map(str, args)])


def manifest(folder):
    return json.loads((folder / MANIFEST).read_text())


def test_prunenet_random(tiny_checkpoint, tmp_path):
    out = tmp_path / "pruned"
    result = run("--model", tiny_checkpoint, "--method", "prunenet", "--ratio", "0.25",
                 "--policy", "random", "--seed", "3", "--out", out)
    assert result.exit_code == 0, result.output
    for text in ("achieved reduction", "params total", "compression time", "peak memory"):
        assert text in result.output
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.intermediate_size == 72
    written = manifest(out)
    assert (written["method"], written["ratio"], written["seed"]) == ("prunenet", 0.25, 3)
    assert written["options"] == {"policy": "random"}
    assert written["extra"]["model"] == str(tiny_checkpoint)
    assert f"{written['params_after']['total']:,}" in result.output
    assert (out / "tokenizer.json").is_file()


def test_method_options_are_typed(tiny_checkpoint, tmp_path):
    out = tmp_path / "learned"
    result = run("--model", tiny_checkpoint, "--method", "prunenet", "--ratio", "0.5",
                 "--policy", "learned", "-o", "steps=2", "--option", "samples=2",
                 "-o", "lr=1e-2", "--out", out)
    assert result.exit_code == 0, result.output
    assert manifest(out)["options"] == {  # resolved: the default hidden=32 is spelled out
        "policy": "learned", "steps": 2, "samples": 2, "lr": 0.01, "hidden": 32
    }


def test_layerdrop_with_calibration(tiny_checkpoint, tiny_data_dir, tmp_path):
    out = tmp_path / "dropped"
    result = run("--model", tiny_checkpoint, "--method", "layerdrop", "--ratio", "0.34",
                 "--calibration", "ptb:valid", "--calib-samples", "4", "--calib-seq-len", "32",
                 "--data-dir", tiny_data_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    extra = manifest(out)["extra"]
    assert (extra["calibration"], extra["calib_blocks"]) == ("ptb:validation", 4)


def test_calibration_never_uses_a_test_split(tiny_checkpoint, tiny_data_dir, tmp_path):
    result = run("--model", tiny_checkpoint, "--method", "layerdrop", "--ratio", "0.34",
                 "--calibration", "ptb:test", "--data-dir", tiny_data_dir,
                 "--out", tmp_path / "x")
    assert isinstance(result.exception, DataError)
    assert not (tmp_path / "x").exists()


def test_unknown_option_lists_the_valid_ones(tiny_checkpoint, tmp_path):
    result = run("--model", tiny_checkpoint, "--method", "prunenet", "--ratio", "0.3",
                 "--policy", "learned", "-o", "epochs=3", "--out", tmp_path / "x")
    assert isinstance(result.exception, CompressionError)
    assert "epochs" in str(result.exception) and "steps (int)" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_overwrite(tiny_checkpoint, tmp_path):
    out = tmp_path / "pruned"
    args = ["--model", tiny_checkpoint, "--method", "prunenet", "--ratio", "0.5", "--out", out]
    assert run(*args).exit_code == 0
    again = run(*args)
    assert isinstance(again.exception, RecordError)
    assert run(*args, "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("steps=8", ("steps", 8)), ("lr=1e-3", ("lr", 1e-3)), ("policy=random", ("policy", "random")),
     ("slice_head=true", ("slice_head", True)), ("num_samples=null", ("num_samples", None)),
     ("name=a=b", ("name", "a=b"))],
)
def test_parse_option(text, expected):
    assert parse_option(text) == expected


@pytest.mark.parametrize("text", ["steps", "=3", ""])
def test_parse_option_rejects_malformed(text):
    with pytest.raises(ConfigError, match="key=value"):
        parse_option(text)


def test_compressed_logits_match_after_cli_roundtrip(tiny_checkpoint, tmp_path):
    """The CLI's checkpoint is the model `compress` makes: r = 0 keeps the logits."""
    out = tmp_path / "same"
    assert run("--model", tiny_checkpoint, "--method", "prunenet", "--ratio", "0",
               "--out", out).exit_code == 0
    ids = torch.arange(10).unsqueeze(0)
    original = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    saved = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        torch.testing.assert_close(saved(ids).logits, original(ids).logits)


def test_output_is_checked_before_the_model_is_loaded(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "earlier.bin").write_text("keep")
    result = run("--model", "no-such-model", "--method", "prunenet", "--ratio", "0.3",
                 "--out", out)
    assert isinstance(result.exception, RecordError)
    assert "is not empty" in str(result.exception)  # not "unknown model": out came first
    assert (out / "earlier.bin").read_text() == "keep"
