"""PruneNet and layerdrop on SmolLM2-135M; losses on 4,096 tokens of WikiText-2 test."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from complaw.compress import compress
from complaw.compress.checkpoint import load_compressed, save_compressed
from complaw.data import load_blocks
from complaw.evaluate.intrinsic import evaluate_loss

pytestmark = pytest.mark.integration

RATIOS = (0.1, 0.3, 0.5)


def test_prunenet_loss_rises_with_ratio(smollm2):
    blocks = load_blocks("wikitext2:test", smollm2.tokenizer, 512, max_tokens=4096)
    base = evaluate_loss(compress(smollm2.model, "prunenet", 0.0).model, blocks).loss
    for policy in ("random", "magnitude"):
        losses = [base]
        for ratio in RATIOS:
            model = copy.deepcopy(smollm2.model)
            losses.append(evaluate_loss(compress(model, "prunenet", ratio, policy=policy).model,
                                        blocks).loss)
        assert all(a < b for a, b in zip(losses, losses[1:], strict=False)), (policy, losses)


def test_compressed_smollm2_checkpoints_reload_without_complaw(smollm2, tmp_path):
    ids = load_blocks("wikitext2:test", smollm2.tokenizer, 64, max_tokens=128)
    calibration = load_blocks("ptb:train", smollm2.tokenizer, 256, max_tokens=1024)
    for method, options in (("prunenet", {"policy": "magnitude"}), ("layerdrop", {})):
        result = compress(copy.deepcopy(smollm2.model), method, 0.3, calibration=calibration,
                          **options)
        with torch.no_grad():
            expected = result.model(ids).logits
        folder = save_compressed(result, tmp_path / method, tokenizer=smollm2.tokenizer)
        plain = AutoModelForCausalLM.from_pretrained(folder).eval()
        with torch.no_grad():
            torch.testing.assert_close(plain(ids).logits, expected)
        assert load_compressed(folder)[1].params_after == result.params_after
    assert result.model.config.num_hidden_layers == 30 - 9
