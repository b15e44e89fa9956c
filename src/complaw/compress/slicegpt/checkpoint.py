"""SliceGPT's checkpoint format (one folder; written inside complaw's atomic checkpoint folder):

- `config.json`: the HF config of the original architecture (tie_word_embeddings false);
- `slicegpt.json`: {"format": "complaw-slicegpt", "version": 1, "hidden_size": d,
  "embedding_dim": d'_0, "layers": [{"attn_in": ., "mlp_in": ., "out": .}, ...]};
- `slicegpt.safetensors`: the full state dict of the sliced model (HF parameter names, plus
  `attn_shortcut` / `mlp_shortcut` per layer).

`load` builds the HF model from the config, replaces its modules by empty ones of the recorded
widths, and loads the state dict strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from complaw.compress.slicegpt.algorithm import untie
from complaw.compress.slicegpt.layers import (
    SlicedDecoderLayer,
    SlicedRMSNorm,
    new_embedding,
    new_linear,
)
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter, adapter_for

FORMAT = "complaw-slicegpt"
VERSION = 1
SPEC_FILE = "slicegpt.json"
WEIGHTS_FILE = "slicegpt.safetensors"


def save(model: PreTrainedModel, folder: Path) -> None:
    """Write config.json, slicegpt.json (widths) and slicegpt.safetensors into `folder`."""
    adapter = adapter_for(model)
    layers = adapter.decoder_layers(model)
    if not all(isinstance(layer, SlicedDecoderLayer) for layer in layers):
        raise CompressionError("save_model of slicegpt needs a model sliced by SliceGPT")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    spec = {
        "format": FORMAT,
        "version": VERSION,
        "hidden_size": model.config.hidden_size,
        "embedding_dim": adapter.part(model, "embed_tokens").embedding_dim,
        "layers": [layer.dims() for layer in layers],
    }
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def load(folder: Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Rebuild the sliced model that `save` wrote into `folder`, in `dtype`."""
    folder = Path(folder)
    try:
        spec = json.loads((folder / SPEC_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CompressionError(f"{folder} holds no readable {SPEC_FILE}: {exc}") from None
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise CompressionError(
            f"{folder / SPEC_FILE} is not a {FORMAT} v{VERSION} spec: "
            f"format={spec.get('format')!r}, version={spec.get('version')!r}"
        )
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    _skeleton(model, adapter_for(model), spec, dtype)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    return model.eval()


def _skeleton(
    model: PreTrainedModel, adapter: ArchitectureAdapter, spec: dict[str, Any], dtype: torch.dtype
) -> None:
    """Replace `model`'s modules by empty ones of the sliced widths recorded in `spec`."""
    config = model.config
    d = config.hidden_size
    eps = float(config.rms_norm_eps)
    layers = adapter.decoder_layers(model)
    if len(spec["layers"]) != len(layers) or spec["hidden_size"] != d:
        raise CompressionError(
            f"slicegpt spec ({len(spec['layers'])} layers, hidden_size {spec['hidden_size']}) does "
            f"not match its config ({len(layers)} layers, hidden_size {d})"
        )

    def empty(in_features: int, out_features: int, bias: bool = False) -> torch.nn.Linear:
        weight = torch.empty(out_features, in_features)
        return new_linear(weight, torch.empty(out_features) if bias else None, dtype)

    def resized(root: torch.nn.Module, role: str, fan_in: int | None, fan_out: int | None) -> None:
        old = adapter.part(root, role)
        adapter.set_part(root, role, empty(fan_in or old.in_features,
                                           fan_out or old.out_features, old.bias is not None))

    untie(model)
    embed = adapter.part(model, "embed_tokens")
    weight = torch.empty(embed.num_embeddings, spec["embedding_dim"], dtype=dtype)
    adapter.set_part(model, "embed_tokens", new_embedding(weight, embed))
    for idx, dims in enumerate(spec["layers"]):
        layer = layers[idx]
        widths = ((dims["attn_in"], dims["mlp_in"]), (dims["mlp_in"], dims["out"]))
        modules, shortcuts = {}, {}
        for block, (width_in, width_out) in zip(adapter.sub_blocks(), widths, strict=True):
            for role in block.inputs:
                resized(layer, role, width_in, None)
            resized(layer, block.output, None, width_out)
            modules[block.name] = adapter.part(layer, block.module)
            shortcuts[block.name] = empty(width_in, width_out)
        layers[idx] = SlicedDecoderLayer(adapter, modules, shortcuts, d, eps)
    adapter.set_part(model, "final_norm", SlicedRMSNorm(d, eps))
    resized(model, "lm_head", spec["layers"][-1]["out"], None)
