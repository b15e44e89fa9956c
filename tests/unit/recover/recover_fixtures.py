"""Helpers of the recovery tests: a quick config, tiny checkpoints of each kind."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from tests.conftest import tiny_model, tiny_tokenizer

from complaw.compress import compress
from complaw.compress.checkpoint import save_compressed
from complaw.recover import RecoveryConfig

SEQ = 32


def config(**changes) -> RecoveryConfig:
    """A quick recovery on the tiny data: 300 tokens of ptb:train (9 full blocks + 12)."""
    values = dict(data="ptb:train", tokens=300, seq_len=SEQ, batch_size=4, lr=5e-3, warmup=0.1)
    return RecoveryConfig(**{**values, **changes})


def checkpoint(tmp_path, family: str, method: str | None, name: str, **options):
    """A tiny `family` model saved as a plain HF folder (method None) or compressed."""
    folder = tmp_path / name
    model = tiny_model(family)
    if method is None:
        model.save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
        return folder
    g = torch.Generator().manual_seed(1)
    calibration = torch.randint(0, model.config.vocab_size, (4, SEQ), generator=g)
    result = compress(model, method, 0.25, calibration=calibration, seed=2, **options)
    save_compressed(result, folder, tokenizer=tiny_tokenizer(), extra={"model": f"tiny-{family}"})
    return folder


def weights(folder) -> dict[str, torch.Tensor]:
    """Every tensor stored in a checkpoint folder's safetensors files."""
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(path)))
    return out
