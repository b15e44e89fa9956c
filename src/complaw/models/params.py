"""Exact parameter counts, the basis of every recorded achieved compression."""

from __future__ import annotations

from transformers import PreTrainedModel

from complaw.models.adapters import ArchitectureAdapter


def count_parameters(model: PreTrainedModel, adapter: ArchitectureAdapter) -> dict[str, int]:
    """Unique parameters (a tied weight counts once) of the whole model and of its blocks.

    `blocks` covers the decoder layers (including any extra matrices a method adds to them);
    `total` is every unique parameter of the model.
    """
    total = sum(p.numel() for p in model.parameters())
    blocks = sum(p.numel() for p in adapter.decoder_layers(model).parameters())
    return {"total": total, "blocks": blocks}


def reduction(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Achieved fractional reduction of each count: 1 - after / before."""
    return {k: 1.0 - after[k] / before[k] for k in before}
