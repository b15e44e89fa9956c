"""Recovery fine-tuning on SmolLM2-135M: a few thousand Alpaca train tokens lower the Alpaca test
loss of a PruneNet and of a SliceGPT checkpoint (r = 0.3), and the recovered checkpoints reload.

Budgets (CPU CI): D = 2,048 alpaca:train tokens (8 blocks of 256, batch 2, 4 steps, lr 1e-3);
evaluation on the first 2,048 alpaca:test tokens; SliceGPT calibrated on 8 × 256 ptb:train.
"""

from __future__ import annotations

import os

import pytest
import torch

from complaw.compress import compress
from complaw.compress.checkpoint import load_compressed, save_compressed
from complaw.data import load_blocks
from complaw.evaluate.intrinsic import evaluate_loss
from complaw.recover import Recovery, recover
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("COMPLAW_DATA_DIR"), reason="set COMPLAW_DATA_DIR (../shared/datasets)"
    ),
]

SEQ = 256
CONFIG = Recovery(dataset="alpaca:train", tokens=8 * SEQ, seq_len=SEQ,
                  options={"batch_size": 2, "lr": 1e-3, "warmup": 0.0})


@pytest.mark.parametrize("method", ["prunenet", "slicegpt"])
def test_rft_lowers_alpaca_test_loss_and_reloads(method, smollm2, tmp_path):
    tok = smollm2.tokenizer
    test = load_blocks("alpaca:test", tok, SEQ, max_tokens=8 * SEQ)
    calibration = load_blocks("ptb:train", tok, SEQ, max_tokens=8 * SEQ)
    options = {"policy": "random"} if method == "prunenet" else {"batch_size": 4}
    result = compress(smollm2.model, method, 0.3, calibration, seed=0, **options)
    folder = save_compressed(result, tmp_path / method, tokenizer=tok,
                             extra={"model": "smollm2-135m"})
    before = evaluate_loss(result.model, test).loss
    del result

    recovered = recover(folder, CONFIG, tmp_path / f"{method}-rft", device="cpu")
    after = evaluate_loss(recovered.model, test).loss
    stats = recovered.stats
    print(f"{method} r=0.3: alpaca:test loss {before:.4f} → {after:.4f} after RFT on "
          f"{stats.tokens} tokens ({stats.tokens_per_s:.0f} tok/s, train loss "
          f"{stats.losses[0]['loss']:.3f} → {stats.final_loss:.3f})")
    assert after < before - 0.01

    reloaded, manifest = load_compressed(recovered.folder)
    assert manifest.method == method and manifest.recovery["tokens"] == 8 * SEQ
    with torch.no_grad():
        torch.testing.assert_close(reloaded(test[:1]).logits, recovered.model(test[:1]).logits)
