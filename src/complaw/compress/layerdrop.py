"""Layer removal by Block Influence, as in ShortGPT (Men et al., 2024, arXiv 2403.03853).

The Block Influence of decoder layer i is

    BI_i = 1 − mean over calibration tokens t of cos(x_i,t, x_i+1,t)

where x_i,t is the hidden state entering layer i and x_i+1,t the one leaving it: a layer that
barely turns the residual stream has a low BI. At ratio r (the fraction of layers removed) the
round(r · n) layers (half up) with the lowest BI are deleted (ties: the earlier layer goes
first); at least one layer must remain. The kept layers are renumbered: `layer_idx` of their
attention (and any other submodule holding one, for the KV cache), `config.num_hidden_layers`
and, where the config has it, the per-layer `config.layer_types`. The result is a standard
model with fewer layers that saves and loads with plain transformers.

BI is measured in one pass over the calibration blocks ([n, seq_len] text token ids; BOS is
prepended where the family needs it, by `ArchitectureAdapter.with_bos`, and its position counts
as a token) through the decoder stack only (no lm_head logits), with forward hooks that
accumulate the cosine similarities, so no hidden states are stored. Options: `batch_size`
(blocks per forward, 4). At r = 0 nothing is measured or changed. `seed` is unused: the
method is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from complaw.compress.base import METHODS, CompressionMethod
from complaw.compress.options import parse_options
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter
from complaw.progress import track


@dataclass(frozen=True)
class LayerDropOptions:
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise CompressionError(f"layerdrop option batch_size={self.batch_size} must be >= 1")


def dropped_layers(n_layers: int, ratio: float) -> int:
    """Layers removed of `n_layers` at `ratio`: ratio * n_layers rounded half up; one must stay."""
    drop = math.floor(ratio * n_layers + 0.5)
    if drop >= n_layers:
        raise CompressionError(
            f"ratio {ratio} removes all {n_layers} layers; use a ratio below "
            f"{(n_layers - 0.5) / n_layers:.4f}"
        )
    return drop


@torch.no_grad()
def block_influence(
    model: PreTrainedModel, adapter: ArchitectureAdapter, blocks: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """BI of every decoder layer (float64, [n_layers]) over the token `blocks` [n, seq_len]."""
    layers = adapter.decoder_layers(model)
    backbone = model.get_submodule(adapter.layers.rpartition(".")[0])
    similarity = torch.zeros(len(layers), dtype=torch.float64)

    def hook(index: int):
        def accumulate(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            entering = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            leaving = output[0] if isinstance(output, tuple) else output
            cosine = F.cosine_similarity(entering.float(), leaving.float(), dim=-1)
            similarity[index] += cosine.double().sum().cpu()

        return accumulate

    handles = [
        layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)
    ]
    device = next(model.parameters()).device
    batches = blocks.split(batch_size)
    tokens = 0
    try:
        for batch in track(batches, "layerdrop: block influence", total=len(batches)):
            inputs = adapter.with_bos(batch, model.config)
            backbone(input_ids=inputs.to(device), use_cache=False)
            tokens += inputs.numel()
    finally:
        for handle in handles:
            handle.remove()
    return 1.0 - similarity / tokens


def keep_layers(model: PreTrainedModel, adapter: ArchitectureAdapter, keep: list[int]) -> None:
    """Keep only decoder layers `keep` (in order), renumbering them and the config."""
    layers = adapter.decoder_layers(model)
    kept = nn.ModuleList(layers[i] for i in keep)
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    adapter.set_part(model, "layers", kept)
    config = model.config
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        config.layer_types = [layer_types[i] for i in keep]
    config.num_hidden_layers = len(keep)


class LayerDrop(CompressionMethod):
    """ShortGPT-style removal of the layers with the lowest Block Influence."""

    needs_calibration = True
    options_class = LayerDropOptions

    def compress_model(
        self,
        model: PreTrainedModel,
        adapter: ArchitectureAdapter,
        ratio: float,
        calibration: torch.Tensor | None,
        seed: int,
        **options: Any,
    ) -> PreTrainedModel:
        opts = parse_options(LayerDropOptions, options, "method 'layerdrop'")
        n_layers = len(adapter.decoder_layers(model))
        drop = dropped_layers(n_layers, ratio)
        if drop == 0:
            return model
        if calibration.ndim != 2:
            raise CompressionError(
                f"layerdrop calibration must be token blocks [n, seq_len], got a tensor of shape "
                f"{tuple(calibration.shape)}"
            )
        influence = block_influence(model, adapter, calibration, opts.batch_size)
        dropped = set(torch.argsort(influence, stable=True)[:drop].tolist())
        keep_layers(model, adapter, [i for i in range(n_layers) if i not in dropped])
        return model


METHODS.add("layerdrop", LayerDrop())
