"""The modules of a sliced model: weightless RMSNorm of a sliced stream, the sliced decoder layer,
and builders of linear / embedding modules around given weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from complaw.models.adapters import ArchitectureAdapter, SubBlock


class SlicedRMSNorm(nn.Module):
    """Weightless RMSNorm of a (possibly sliced) stream, normalised by the original width.

    y = x / sqrt(sum(x²) / full_dim + eps); with x of width full_dim this is HF's RMSNorm with
    unit weight (computed in float32, returned in the input dtype, as HF does).
    """

    def __init__(self, full_dim: int, eps: float) -> None:
        super().__init__()
        self.full_dim = full_dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).sum(-1, keepdim=True) / self.full_dim
        return (x * torch.rsqrt(variance + self.eps)).to(dtype)

    def extra_repr(self) -> str:
        return f"full_dim={self.full_dim}, eps={self.eps}"


def run_sub_block(
    block: SubBlock, module: nn.Module, x: torch.Tensor, layer_kwargs: dict[str, Any]
) -> torch.Tensor:
    """The output of a sub-block's module on its (normalised) input `x`."""
    if not block.takes_layer_kwargs:
        return module(x)
    return module(hidden_states=x, **layer_kwargs)[0]


class SlicedDecoderLayer(GradientCheckpointingLayer):
    """A sliced pre-norm decoder layer around the HF layer's own attention and MLP modules.

    For each sub-block (attention, then MLP; see `ArchitectureAdapter.sub_blocks`):
    x ← shortcut(x) + module(norm(x)). The stream widths are attn_in → mlp_in → out. Modules
    are held under the adapter's role paths (so `adapter.part(layer, "q_proj")` still works and
    the state dict keeps the HF names) and the shortcuts as `<sub-block>_shortcut`
    (`attn_shortcut`, `mlp_shortcut`). The call signature is the HF decoder layer's, so the HF
    model's forward (masks, rotary embeddings, cache) is unchanged.
    """

    def __init__(
        self,
        adapter: ArchitectureAdapter,
        modules: dict[str, nn.Module],
        shortcuts: dict[str, nn.Linear],
        full_dim: int,
        eps: float,
    ) -> None:
        super().__init__()
        self.blocks = adapter.sub_blocks()
        self._adapter = adapter
        for block in self.blocks:
            adapter.set_part(self, block.norm, SlicedRMSNorm(full_dim, eps))
            adapter.set_part(self, block.module, modules[block.name])
            self.add_module(f"{block.name}_shortcut", shortcuts[block.name])

    def shortcut(self, block: SubBlock) -> nn.Linear:
        return self.get_submodule(f"{block.name}_shortcut")

    def dims(self) -> dict[str, int]:
        """The stream widths: attention input, MLP input and layer output."""
        attn, mlp = (self.shortcut(block) for block in self.blocks)
        return {"attn_in": attn.in_features, "mlp_in": mlp.in_features, "out": mlp.out_features}

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        for block in self.blocks:
            norm = self._adapter.part(self, block.norm)
            out = run_sub_block(block, self._adapter.part(self, block.module),
                                norm(hidden_states), kwargs)
            hidden_states = self.shortcut(block)(hidden_states) + out
        return hidden_states


def new_linear(weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> nn.Linear:
    """An nn.Linear holding `weight` [out, in] (and `bias`) in `dtype`, without random init."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight.to(dtype).contiguous())
    if bias is not None:
        layer.bias = nn.Parameter(bias.to(dtype).contiguous())
    return layer


def new_embedding(weight: torch.Tensor, old: nn.Embedding) -> nn.Embedding:
    """An embedding with `old`'s padding index holding `weight` [vocab, width]."""
    embed = nn.Embedding(*weight.shape, padding_idx=old.padding_idx, device="meta")
    embed.weight = nn.Parameter(weight.contiguous())
    return embed
