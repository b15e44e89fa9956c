"""SliceGPT on SmolLM2-135M: invariance at r = 0 and WikiText-2 loss rising with the ratio."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from complaw.compress import compress
from complaw.compress.slicegpt import BASES
from complaw.data import load_blocks
from complaw.evaluate.intrinsic import evaluate_loss
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("COMPLAW_DATA_DIR"), reason="set COMPLAW_DATA_DIR (../shared/datasets)"
    ),
]


@pytest.mark.parametrize("basis", BASES)
def test_zero_ratio_keeps_smollm2_logits(smollm2, basis):
    model, tok = smollm2.model, smollm2.tokenizer
    calibration = load_blocks("ptb:train", tok, 256, max_tokens=4 * 256)
    blocks = load_blocks("wikitext2:test", tok, 256, max_tokens=2 * 256)
    with torch.no_grad():
        before = model(blocks).logits
    result = compress(model, "slicegpt", 0.0, calibration, batch_size=4, basis=basis,
                      centre_embeddings=False)
    assert result.model is model  # sliced in place
    with torch.no_grad():
        after = result.model(blocks).logits
    assert ((after - before).abs().max() / before.abs().max()).item() < 1e-4
    assert result.model.lm_head.weight is not result.model.model.embed_tokens.weight


def test_wikitext2_loss_rises_with_ratio(smollm2):
    """Calibration: 8 × 256 tokens of ptb:train; evaluation: 16 × 256 WikiText-2 test tokens."""
    model, tok = smollm2.model, smollm2.tokenizer
    calibration = load_blocks("ptb:train", tok, 256, max_tokens=8 * 256)
    blocks = load_blocks("wikitext2:test", tok, 256, max_tokens=16 * 256)
    dense = evaluate_loss(model, blocks).loss
    losses = []
    for ratio in (0.0, 0.1, 0.3, 0.5):
        result = compress(copy.deepcopy(model), "slicegpt", ratio, calibration, batch_size=4)
        losses.append(evaluate_loss(result.model, blocks).loss)
        print(f"slicegpt r={ratio}: loss {losses[-1]:.4f} params {result.params_after['total']} "
              f"compress {result.seconds:.0f}s")
    # the default centres the embedding rows, which moves an RMSNorm model a little (< 0.1 %)
    assert losses[0] == pytest.approx(dense, rel=1e-3) and losses[0] != dense
    assert losses == sorted(losses) and len(set(losses)) == len(losses)
