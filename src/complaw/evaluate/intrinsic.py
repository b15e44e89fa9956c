"""Intrinsic evaluation: token-weighted mean cross-entropy (nats) over fixed-length blocks."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from complaw.errors import ConfigError
from complaw.progress import track


@dataclass(frozen=True)
class IntrinsicResult:
    loss: float  # mean cross-entropy in nats per predicted token
    perplexity: float
    tokens: int  # predicted tokens (seq_len - 1 per block)
    blocks: int
    seq_len: int
    seconds: float
    tokens_per_s: float  # input tokens processed per second

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def block_loss_sum(model: PreTrainedModel, batch: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy (float64) over every predicted token of a batch."""
    logits = model(input_ids=batch, use_cache=False).logits
    # Targets shifted left; the last position has none (-100). Flattening the contiguous logits
    # is a view, so no copy of the [batch, seq_len, vocab] tensor is made.
    targets = F.pad(batch[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="sum"
    ).double()


def evaluate_loss(
    model: PreTrainedModel, blocks: torch.Tensor, batch_size: int = 4
) -> IntrinsicResult:
    """Mean test cross-entropy of `model` over `blocks` ([n, seq_len] token ids), batched."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if blocks.ndim != 2 or blocks.shape[1] < 2:
        raise ConfigError(f"blocks must be [n, seq_len >= 2] token ids, got {tuple(blocks.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    batches = blocks.split(batch_size)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in track(batches, "evaluating loss", total=len(batches)):
            total += block_loss_sum(model, batch.to(device)).cpu()
    seconds = time.perf_counter() - start
    model.train(was_training)
    n, seq_len = blocks.shape
    tokens = n * (seq_len - 1)
    loss = float(total) / tokens
    return IntrinsicResult(
        loss=loss, perplexity=math.exp(loss), tokens=tokens, blocks=n, seq_len=seq_len,
        seconds=seconds, tokens_per_s=blocks.numel() / seconds,
    )
