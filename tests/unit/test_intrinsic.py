import math

import pytest
import torch

from complaw.errors import ConfigError
from complaw.evaluate.intrinsic import evaluate_loss


def reference_loss(model, blocks):
    """Independent computation: HF's own `labels=` loss per block, token-weighted."""
    with torch.no_grad():
        losses = [model(input_ids=b[None], labels=b[None]).loss.double() for b in blocks]
    return float(torch.stack(losses).mean())  # every block predicts seq_len - 1 tokens


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_matches_hf_labels_loss(tiny_any, token_blocks, batch_size):
    result = evaluate_loss(tiny_any, token_blocks, batch_size=batch_size)
    assert result.loss == pytest.approx(reference_loss(tiny_any, token_blocks), abs=1e-5)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    n, seq_len = token_blocks.shape
    assert (result.tokens, result.blocks, result.seq_len) == (n * (seq_len - 1), n, seq_len)
    assert result.tokens_per_s > 0


def test_restores_training_mode(tiny_llama, token_blocks):
    tiny_llama.train()
    evaluate_loss(tiny_llama, token_blocks)
    assert tiny_llama.training


def test_bad_arguments(tiny_llama, token_blocks):
    with pytest.raises(ConfigError, match="batch_size must be positive"):
        evaluate_loss(tiny_llama, token_blocks, batch_size=0)
    with pytest.raises(ConfigError, match="blocks must be"):
        evaluate_loss(tiny_llama, token_blocks[0])
