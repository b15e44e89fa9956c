"""The SliceGPT compression method: options and checks, then the in-place algorithm."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import PretrainedConfig, PreTrainedModel

from complaw.compress.base import CompressionMethod
from complaw.compress.options import parse_options
from complaw.compress.slicegpt import checkpoint
from complaw.compress.slicegpt.algorithm import slice_in_place
from complaw.compress.slicegpt.options import (
    SliceOptions,
    check_calibration,
    check_model,
    check_width,
)
from complaw.models.adapters import ArchitectureAdapter


class SliceGPT(CompressionMethod):
    """SliceGPT: rotate each block's residual stream onto its principal axes, slice the rest.

    The ratio r is the fraction of the embedding dimension sliced (see `sliced_dim`).
    """

    needs_calibration: ClassVar[bool] = True
    needs_rotation_invariance: ClassVar[bool] = True  # see ArchitectureAdapter.rotation_invariant
    options_class: ClassVar[type] = SliceOptions  # resolved options: part of experiment ids

    def compress_model(
        self,
        model: PreTrainedModel,
        adapter: ArchitectureAdapter,
        ratio: float,
        calibration: torch.Tensor | None,
        seed: int,
        **options: Any,
    ) -> PreTrainedModel:
        """Slice `model` in place and return it. Bad input is refused before anything changes;
        a failure while slicing leaves the model unusable (reload it)."""
        opts = parse_options(SliceOptions, options, "slicegpt")
        check_model(model, adapter)
        config = model.config
        d_sliced = check_width(config.hidden_size, ratio, opts.round_to)
        blocks = check_calibration(calibration, opts, self.min_calibration_tokens(config),
                                   config.vocab_size)
        training = model.training
        with torch.no_grad():
            slice_in_place(model.eval(), adapter, blocks, d_sliced, opts)
        return model.train(training)

    def min_calibration_tokens(self, config: PretrainedConfig) -> int:
        """The PCA of each d × d residual covariance needs at least d = hidden_size tokens."""
        return config.hidden_size

    def save_model(self, model: PreTrainedModel, folder: Path) -> None:
        """Write the sliced model in SliceGPT's format (see `slicegpt.checkpoint`)."""
        checkpoint.save(model, folder)

    def load_model(self, folder: Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
        """Rebuild the sliced model that `save_model` wrote into `folder`, in `dtype`."""
        return checkpoint.load(folder, dtype)
