"""Speed measurement on tiny random models: interleaved ratios and FLOPs from shapes."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
from typer.testing import CliRunner

from complaw.cli import app
from complaw.compress.base import compress
from complaw.config import SpeedOptions
from complaw.errors import ConfigError
from complaw.evaluate.speed import flops_per_token, measure_speed
from complaw.models import LoadedModel, ModelSource, adapter_for
from tests.conftest import TINY, tiny_model, tiny_tokenizer

SHAPES = SpeedOptions(batch_size=2, prompt_len=32, new_tokens=4, repeats=5, warmup=1, threads=1)


def loaded(model) -> LoadedModel:
    return LoadedModel("tiny", ModelSource("folder", "tiny"), model, tiny_tokenizer(),
                       adapter_for(model), "float32")


def test_flops_per_token_from_shapes():
    model = tiny_model("llama")
    h, f, layers, vocab = (TINY["hidden_size"], TINY["intermediate_size"],
                           TINY["num_hidden_layers"], TINY["vocab_size"])
    head_dim = h // TINY["num_attention_heads"]
    kv = TINY["num_key_value_heads"] * head_dim
    per_layer = h * h + 2 * h * kv + h * h + 3 * h * f  # q, k, v, o, gate, up, down
    expected = 2 * (layers * per_layer + h * vocab) + 4 * layers * 100 * h
    assert flops_per_token(model, 100) == expected


def test_model_against_itself_times_both_alike():
    # How close to 1 the measured speedup comes is a timing claim: benchmarks/eval_throughput.py
    model = loaded(tiny_model("llama"))
    result = measure_speed(model, SHAPES, baseline=model)
    for phase in ("prefill", "decode"):
        for side in ("model", "baseline"):
            stats = result[side][phase]
            assert len(stats["repeats"]) == SHAPES.repeats
            assert all(0 < v < math.inf for v in stats["repeats"])
            assert stats["tokens_per_s"] == statistics.median(stats["repeats"])
        assert result["speedup"][phase] == (result["model"][phase]["tokens_per_s"]
                                            / result["baseline"][phase]["tokens_per_s"])
        assert result["speedup"][f"ideal_{phase}"] == 1.0
    assert result["threads"] == 1


def test_two_models_give_a_ratio():
    big = tiny_model("llama")
    small = compress(tiny_model("llama"), "prunenet", 0.5, policy="random").model
    result = measure_speed(loaded(small), SHAPES, baseline=loaded(big))
    base, model = result["baseline"], result["model"]
    for phase in ("prefill", "decode"):
        assert result["speedup"][phase] == pytest.approx(
            model[phase]["tokens_per_s"] / base[phase]["tokens_per_s"])
        assert model[phase]["min"] <= model[phase]["tokens_per_s"] <= model[phase]["max"]
    assert result["speedup"]["ideal_prefill"] > 1.1
    assert result["speedup"]["ideal_decode"] == pytest.approx(
        base["flops_per_token"]["decode"] / model["flops_per_token"]["decode"])


def test_speed_cli_record(tiny_checkpoint, tmp_path):
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, [
        "speed", "--model", str(tiny_checkpoint), "--baseline", str(tiny_checkpoint),
        "--prompt-len", "16", "--new-tokens", "2", "--repeats", "2", "--threads", "1",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    kinds = [(m["metric"], m["dataset"]) for m in record["metrics"]]
    assert kinds == [("throughput", "prefill"), ("speedup", "prefill"),
                     ("throughput", "decode"), ("speedup", "decode"), ("memory", "weights")]
    assert record["config"]["eval"]["kind"] == "speed" and record["speed"]["threads"] == 1


@pytest.mark.parametrize("field", ["batch_size", "prompt_len", "new_tokens", "repeats"])
def test_bad_shapes(field):
    with pytest.raises(ConfigError, match=f"{field} must be positive"):
        SpeedOptions(**{field: 0})
    assert SpeedOptions.from_dict(SHAPES.to_dict()) == SHAPES


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
