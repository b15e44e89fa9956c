"""Helpers of the recovery tests: a quick config, tiny checkpoints of each kind."""

from __future__ import annotations

from dataclasses import fields

import torch
from safetensors.torch import load_file
from tests.conftest import tiny_model, tiny_tokenizer

from complaw.compress import compress
from complaw.compress.checkpoint import save_compressed
from complaw.config import Recovery

SEQ = 32


def config(**changes) -> Recovery:
    """A quick recovery on the tiny data: 300 tokens of ptb:train (9 full blocks + 12),
    resolved; `changes` name Recovery's fields or its LoRA options."""
    values = {"dataset": "ptb:train", "tokens": 300, "seq_len": SEQ, "batch_size": 4, "lr": 5e-3,
              "warmup": 0.1, **changes}
    own = {f.name for f in fields(Recovery)}
    options = {k: v for k, v in values.items() if k not in own}
    return Recovery(**{k: v for k, v in values.items() if k in own}, options=options).resolve()


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
