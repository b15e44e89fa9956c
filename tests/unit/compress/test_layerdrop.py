"""Layer removal by Block Influence (ShortGPT)."""

from __future__ import annotations

import pytest
import torch
from tests.conftest import TINY
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)

from complaw.compress import compress
from complaw.compress.layerdrop import block_influence
from complaw.errors import CompressionError
from complaw.models import adapter_for

N = TINY["num_hidden_layers"]  # 3


def logits(model, blocks):
    with torch.no_grad():
        return model(blocks).logits


def make_identity(layer) -> None:
    """Zero what a layer writes to the residual stream: its output equals its input."""
    with torch.no_grad():
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()


def test_ratio_zero_leaves_logits_unchanged(tiny_any, token_blocks):
    before = logits(tiny_any, token_blocks)
    result = compress(tiny_any, "layerdrop", 0.0, calibration=token_blocks)
    assert torch.equal(logits(result.model, token_blocks), before)
    assert result.model.config.num_hidden_layers == N


@pytest.mark.parametrize(("ratio", "dropped"), [(0.2, 1), (0.34, 1), (0.5, 2), (0.66, 2)])
def test_removes_round_r_n_layers_and_renumbers(tiny_any, token_blocks, ratio, dropped):
    per_layer = sum(p.numel() for p in tiny_any.model.layers[0].parameters())
    result = compress(tiny_any, "layerdrop", ratio, calibration=token_blocks)
    model = result.model
    assert result.params_after["total"] == result.params_before["total"] - dropped * per_layer
    assert result.params_after["blocks"] == (N - dropped) * per_layer
    assert model.config.num_hidden_layers == len(model.model.layers) == N - dropped
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == list(range(N - dropped))
    if hasattr(model.config, "layer_types"):
        assert len(model.config.layer_types) == N - dropped


def test_drops_the_layer_of_lowest_block_influence(tiny_any, token_blocks):
    layers = list(tiny_any.model.layers)
    make_identity(layers[1])
    influence = block_influence(tiny_any, adapter_for(tiny_any), token_blocks, batch_size=3)
    assert influence[1] == pytest.approx(0.0, abs=1e-6)
    assert all(0.0 < float(bi) <= 2.0 for bi in influence[[0, 2]])
    result = compress(tiny_any, "layerdrop", 0.3, calibration=token_blocks)
    assert list(result.model.model.layers) == [layers[0], layers[2]]


def test_block_influence_does_not_depend_on_batching(tiny_llama, token_blocks):
    adapter = adapter_for(tiny_llama)
    one = block_influence(tiny_llama, adapter, token_blocks, batch_size=1)
    four = block_influence(tiny_llama, adapter, token_blocks, batch_size=4)
    torch.testing.assert_close(one, four)


def test_generation_with_kv_cache_after_dropping(tiny_any, token_blocks):
    make_identity(tiny_any.model.layers[0])
    model = compress(tiny_any, "layerdrop", 0.3, calibration=token_blocks).model
    prompt = token_blocks[:1, :6]
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    cached = model.generate(prompt, use_cache=True, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.shape == (1, 11)
    assert torch.equal(cached, uncached)


def test_needs_calibration(tiny_llama):
    with pytest.raises(CompressionError, match="needs calibration"):
        compress(tiny_llama, "layerdrop", 0.3)


def test_ratio_removing_every_layer_is_rejected(tiny_llama, token_blocks):
    with pytest.raises(CompressionError, match="removes all 3 layers"):
        compress(tiny_llama, "layerdrop", 0.9, calibration=token_blocks)
    assert len(tiny_llama.model.layers) == N


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"batch": 2}, r"unknown option.*batch.*valid options: batch_size \(int\)"),
        ({"batch_size": 0}, "batch_size=0 must be >= 1"),
        ({"batch_size": 2.5}, "batch_size=2.5.*must be int"),
    ],
)
def test_bad_options_are_named(tiny_llama, token_blocks, bad, message):
    with pytest.raises(CompressionError, match=message):
        compress(tiny_llama, "layerdrop", 0.3, calibration=token_blocks, **bad)
