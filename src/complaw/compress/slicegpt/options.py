"""SliceGPT's options and the checks of its inputs (model, ratio, calibration blocks)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from complaw.compress.slicegpt.layers import SlicedDecoderLayer
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter

# the signal each PCA is taken on (see the package docstring for the measurements)
BASES = ("normalised", "residual")


@dataclass(frozen=True)
class SliceOptions:
    """SliceGPT's options (see the package docstring)."""

    num_samples: int | None = None
    batch_size: int = 1
    round_to: int = 8
    slice_head: bool = False
    basis: str = "residual"
    centre_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("num_samples", "batch_size", "round_to"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CompressionError(f"slicegpt option {name}={value} must be >= 1")
        if self.basis not in BASES:
            raise CompressionError(
                f"slicegpt option basis={self.basis!r} must be one of {', '.join(BASES)}"
            )


def sliced_dim(hidden_size: int, ratio: float, round_to: int = 8) -> int:
    """d' = d − ceil(r·d / round_to)·round_to: (1 − r)·d rounded down to a multiple of round_to."""
    removed = math.ceil(ratio * hidden_size / round_to - 1e-9) * round_to
    return hidden_size - removed


def check_width(hidden_size: int, ratio: float, round_to: int) -> int:
    """The sliced width d' (see `sliced_dim`); an error if it leaves nothing."""
    d_sliced = sliced_dim(hidden_size, ratio, round_to)
    if d_sliced < 1:
        raise CompressionError(
            f"ratio {ratio} slices all {hidden_size} embedding dimensions (d' = {d_sliced} after "
            f"rounding the sliced count up to a multiple of round_to={round_to}); use a "
            "smaller ratio or round_to"
        )
    return d_sliced


def check_model(model: PreTrainedModel, adapter: ArchitectureAdapter) -> None:
    """SliceGPT needs rotation-invariant pre-norm layers whose sub-block modules, norms and
    readers/writers the adapter names."""
    if not adapter.rotation_invariant:
        raise CompressionError(
            f"slicegpt cannot slice {adapter.name} models: "
            f"{adapter.rotation_note or 'their residual stream is not rotation invariant'}; "
            "use prunenet or layerdrop"
        )
    layers = adapter.decoder_layers(model)
    if any(isinstance(layer, SlicedDecoderLayer) for layer in layers):
        raise CompressionError("this model is already sliced by SliceGPT; load the original model")
    for block in adapter.sub_blocks():
        for role in (block.module, block.norm):
            if "." in getattr(adapter, role):
                raise CompressionError(
                    f"slicegpt needs the {role} module to be a child of the decoder layer; "
                    f"adapter {adapter.name!r} puts it at {getattr(adapter, role)!r}"
                )
    if not hasattr(model.config, "rms_norm_eps"):
        raise CompressionError(
            f"slicegpt supports RMSNorm models; {model.config.model_type!r} has no rms_norm_eps"
        )


def check_calibration(
    calibration: torch.Tensor | None, opts: SliceOptions, min_tokens: int, vocab_size: int
) -> torch.Tensor:
    """The calibration blocks to use (the first `num_samples`), as int64; errors name the fix."""
    if (
        not isinstance(calibration, torch.Tensor)
        or calibration.ndim != 2
        or calibration.dtype not in (torch.int64, torch.int32)
        or calibration.numel() == 0
    ):
        got = (
            f"{calibration.dtype} tensor of shape {tuple(calibration.shape)}"
            if isinstance(calibration, torch.Tensor)
            else type(calibration).__name__
        )
        raise CompressionError(
            f"slicegpt calibration must be integer token blocks [n_blocks, seq_len]; got {got}"
        )
    n_blocks, seq_len = calibration.shape
    if opts.num_samples is not None:
        if n_blocks < opts.num_samples:
            raise CompressionError(
                f"slicegpt asked for num_samples={opts.num_samples} calibration blocks but got "
                f"{n_blocks} (of {seq_len} tokens); build more blocks or lower num_samples"
            )
        calibration = calibration[: opts.num_samples]
        n_blocks = opts.num_samples
    if n_blocks * seq_len < min_tokens:
        raise CompressionError(
            f"slicegpt needs at least hidden_size={min_tokens} calibration tokens for its PCA; "
            f"got {n_blocks} blocks × {seq_len} = {n_blocks * seq_len}"
        )
    if int(calibration.min()) < 0 or int(calibration.max()) >= vocab_size:
        raise CompressionError(
            f"slicegpt calibration holds token ids outside [0, {vocab_size}); tokenise it with "
            "the model's tokenizer"
        )
    return calibration.long()
