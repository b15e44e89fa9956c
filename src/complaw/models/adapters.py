"""Architecture adapters: one per decoder-only family, naming the parts that methods touch.

Paths are dotted attribute paths: model-level ones (`layers`, `embed_tokens`, ...) are relative
to the `*ForCausalLM` model, layer-level ones (`q_proj`, `gate_proj`, ...) to one decoder layer.
Adding a family is one `ADAPTERS.add(...)` call with its paths and HF `model_type` values.

Beyond paths, the adapter names what reads what (`sub_blocks`): a pre-norm decoder layer is two
residual sub-blocks, x + attention(norm(x)) then h + mlp(norm'(h)); each names its module, the
norm that reads the residual stream, the projections that read the norm's output (`inputs`)
and the projection that writes back into the stream (`output`). The final norm is read by the
lm_head. Methods that rotate or slice the residual stream (SliceGPT) work from these roles only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from complaw.errors import ModelError
from complaw.projections import PROJECTIONS
from complaw.registry import Registry

ADAPTERS: Registry[ArchitectureAdapter] = Registry("architecture adapter", ModelError)


@dataclass(frozen=True)
class SubBlock:
    """One residual sub-block of a pre-norm decoder layer: x + module(norm(x)).

    Every field but `name` is an adapter role (a field name of `ArchitectureAdapter`).
    `takes_layer_kwargs`: the module is called as module(hidden_states=..., **layer kwargs)
    (attention: mask, rotary embeddings) and returns a tuple whose first item is its output;
    otherwise module(x) returns the output.
    """

    name: str
    module: str
    norm: str
    inputs: tuple[str, ...]
    output: str
    takes_layer_kwargs: bool = False


@dataclass(frozen=True)
class ArchitectureAdapter:
    name: str
    model_types: tuple[str, ...]
    # model-level paths
    layers: str = "model.layers"
    embed_tokens: str = "model.embed_tokens"
    final_norm: str = "model.norm"
    lm_head: str = "lm_head"
    # layer-level paths
    input_norm: str = "input_layernorm"
    post_attention_norm: str = "post_attention_layernorm"
    q_proj: str = "self_attn.q_proj"
    k_proj: str = "self_attn.k_proj"
    v_proj: str = "self_attn.v_proj"
    o_proj: str = "self_attn.o_proj"
    gate_proj: str = "mlp.gate_proj"
    up_proj: str = "mlp.up_proj"
    down_proj: str = "mlp.down_proj"
    # config attribute holding the FFN width
    intermediate_size_attr: str = "intermediate_size"
    # whether q/k/v projections carry a bias (Qwen2 does)
    qkv_bias: bool = False
    # whether every block's input must start with the BOS token (Gemma's do: without it Gemma 3
    # 270M's WikiText-2 loss is 0.62 nats worse, 3.57 against 2.95); see `bos_id`, `with_bos`
    needs_bos: bool = False
    # whether a rotation of the residual stream can be folded into the weights (SliceGPT's
    # premise); `rotation_note` says why not when False
    rotation_invariant: bool = True
    rotation_note: str = ""
    # the sub-block modules (children of a decoder layer)
    attention: str = "self_attn"
    mlp: str = "mlp"
    # what reads and writes the residual stream (roles, see `sub_blocks`)
    attention_inputs: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    attention_output: str = "o_proj"
    mlp_inputs: tuple[str, ...] = ("gate_proj", "up_proj")
    mlp_output: str = "down_proj"
    # an RMSNorm multiplies by (weight + norm_weight_offset): 0 in llama, 1 in Gemma
    norm_weight_offset: float = 0.0

    LAYER_PARTS = (
        "input_norm", "post_attention_norm", "q_proj", "k_proj", "v_proj", "o_proj",
        "gate_proj", "up_proj", "down_proj", "attention", "mlp",
    )
    MODEL_PARTS = ("layers", "embed_tokens", "final_norm", "lm_head")
    PROJECTIONS = PROJECTIONS

    def decoder_layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.get_submodule(self.layers)

    def part(self, root: nn.Module, role: str) -> nn.Module:
        """The module playing `role` (a field name such as "q_proj") under `root`."""
        return root.get_submodule(getattr(self, role))

    def set_part(self, root: nn.Module, role: str, module: nn.Module) -> None:
        parent_path, _, attr = getattr(self, role).rpartition(".")
        parent = root.get_submodule(parent_path) if parent_path else root
        setattr(parent, attr, module)

    def projection_names(
        self, model: PreTrainedModel, roles: tuple[str, ...] = PROJECTIONS
    ) -> list[str]:
        """Full module names (`model.layers.0.self_attn.q_proj`, ...) of the projections playing
        `roles` in every decoder layer, e.g. the targets of LoRA."""
        count = len(self.decoder_layers(model))
        return [f"{self.layers}.{i}.{getattr(self, role)}" for i in range(count) for role in roles]

    def tied_embeddings(self, model: PreTrainedModel) -> bool:
        head = model.get_submodule(self.lm_head)
        embed = model.get_submodule(self.embed_tokens)
        return head.weight is embed.weight

    def intermediate_size(self, config: PretrainedConfig) -> int:
        return int(getattr(config, self.intermediate_size_attr))

    def bos_id(self, config: PretrainedConfig) -> int | None:
        """The token id every model input must start with, or None if the family needs none."""
        if not self.needs_bos:
            return None
        bos = getattr(config, "bos_token_id", None)
        if not isinstance(bos, int):
            raise ModelError(
                f"{self.name} models need a BOS token but config.bos_token_id is {bos!r}; "
                "set it in the model's config.json"
            )
        return bos

    def with_bos(self, ids: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
        """Token blocks [n, seq_len] of text ids as model inputs: [n, seq_len + 1] with the BOS
        column in front where the family needs it, else `ids` itself. A next-token loss over
        the result then predicts every text token (BOS is never a target)."""
        bos = self.bos_id(config)
        if bos is None:
            return ids
        column = torch.full((ids.shape[0], 1), bos, dtype=ids.dtype, device=ids.device)
        return torch.cat([column, ids], dim=1)

    def sub_blocks(self) -> tuple[SubBlock, SubBlock]:
        """The layer's two residual sub-blocks, in order: attention, then MLP."""
        return (
            SubBlock("attn", "attention", "input_norm", self.attention_inputs,
                     self.attention_output, takes_layer_kwargs=True),
            SubBlock("mlp", "mlp", "post_attention_norm", self.mlp_inputs, self.mlp_output),
        )

    def norm_scale(self, norm: nn.Module) -> torch.Tensor:
        """The per-channel factor an RMSNorm module multiplies its normalised input by."""
        return norm.weight + self.norm_weight_offset


ADAPTERS.add("llama", ArchitectureAdapter("llama", model_types=("llama", "mistral")))
ADAPTERS.add("qwen2", ArchitectureAdapter("qwen2", model_types=("qwen2",), qkv_bias=True))
# Gemma 3 text models. Each block is x + post_attn_norm(attn(input_norm(x))), then
# h + post_ffn_norm(mlp(pre_ffn_norm(h))); `post_attention_norm` names the norm the MLP reads
# (pre_feedforward_layernorm), as it does for llama. Norms scale by (1 + w), q/k are
# RMS-normed per head, the embeddings are scaled by sqrt(hidden_size) inside the embedding
# module, and five of every six layers use sliding-window attention (config.layer_types).
ADAPTERS.add("gemma3", ArchitectureAdapter(
    "gemma3", model_types=("gemma3_text",),
    post_attention_norm="pre_feedforward_layernorm",
    norm_weight_offset=1.0,
    needs_bos=True,
    rotation_invariant=False,
    rotation_note=(
        "its blocks RMS-normalise the attention and MLP outputs before adding them to the "
        "residual stream (post-norms), so a rotation of the stream cannot be folded into the "
        "weights"
    ),
))


def adapter_for(model_or_config: PreTrainedModel | PretrainedConfig) -> ArchitectureAdapter:
    """The adapter of a model (or config), by its HF `model_type`."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    for _, adapter in ADAPTERS.items():
        if model_type in adapter.model_types:
            return adapter
    supported = ", ".join(t for _, a in ADAPTERS.items() for t in a.model_types)
    raise ModelError(
        f"architecture {model_type!r} has no adapter; supported model types: {supported}. "
        "Add one in complaw/models/adapters.py."
    )
