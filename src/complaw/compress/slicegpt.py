"""SliceGPT (Ashkboos et al., ICLR 2024, arXiv 2401.15024) for RMSNorm pre-norm decoders.

**Computational invariance.** Each RMSNorm's scale is fused into the linear layers that read it
(q/k/v after the input norm, gate/up after the post-attention norm, lm_head after the final
norm), leaving weightless norms. A weightless RMSNorm commutes with any orthogonal Q
(RMSNorm(xQ) = RMSNorm(x)Q), so the residual stream can be expressed in a rotated basis: layers
that read it get W Q, layers that write it get Qᵀ W (biases of writers: b Q; q/k/v biases, as in
Qwen2, live in the readers' output space and are left alone).

**A basis per block (paper, Sec. 3).** As in the paper, every sub-block has its own basis: the
attention input of layer ℓ uses Q_ℓ, its MLP input uses Q'_ℓ, and layer ℓ's output (= layer
ℓ+1's input) uses Q_ℓ+1. Each Q is the eigenbasis (float64 `eigh`, columns by decreasing
eigenvalue) of Σ xᵀx over the calibration tokens, x being the *normalised* signal (the output of
the weightless RMSNorm that reads that stream). The residual path between two bases is carried
by shortcut matrices: `attn_shortcut` = Q_ℓᵀ Q'_ℓ and `mlp_shortcut` = Q'_ℓᵀ Q_ℓ+1. The
embedding is rotated by Q_0. Layers are processed in order: the calibration activations entering
layer ℓ are produced by the already-sliced layers before it. The input model is copied first and
left untouched (peak memory ≈ 2 × model + two copies of the calibration activations).

**Slicing.** Only the first d' principal directions are kept: embedding columns,
q/k/v/gate/up input columns, o_proj/down_proj output rows and shortcut rows/columns.
d' = d − ceil(r·d / round_to)·round_to, i.e. (1 − r)·d rounded down to a multiple of `round_to`
(8, as in the reference implementation) whenever d is one, and d' = d at r = 0. As in the
reference implementation's default, the last layer's output and the lm_head input stay at the
full (rotated) width d unless `slice_head=True`. The shortcut matrices add 2·d'² parameters per
layer, and untying adds vocab·d: on small models the sliced model can be larger than the
original at small r (SmolLM2-135M: 182.7 M parameters at r = 0, 131.6 M at r = 0.3).

**RMSNorm on a sliced stream.** A sliced vector x' (d' coordinates) stands for the full rotated
vector whose dropped coordinates carry the least energy, so ‖x'‖² approximates ‖x‖². The norms
are therefore replaced by `SlicedRMSNorm`: y = x' / sqrt(‖x'‖² / d + eps), with the *original*
width d in the denominator (dividing by d' would scale every normalised signal up by √(d/d')).
At r = 0 this is exactly the original weightless RMSNorm, so the model's logits are unchanged.

**Tied embeddings** (e.g. SmolLM2) are untied: the embedding is rotated by Q_0, the lm_head by
the last basis (and the final norm's scale), so the sliced model has two matrices
(`config.tie_word_embeddings` is set to False).

**Calibration.** `calibration` is a LongTensor of token blocks [n_blocks, seq_len] built by the
caller. The reference used 1024 blocks × 2048 tokens of WikiText-2 train; on CPU we recommend
64 × 512 (at least hidden_size tokens are required). The bases fit the calibration domain:
calibrating on one corpus and evaluating on another costs much more than in-domain calibration.
The method is deterministic: `seed` is unused.

**Options.** `num_samples` (use the first N blocks; None = all; more than given is an error),
`batch_size` (blocks per forward, default 8), `round_to` (default 8), `slice_head` (default False).

**Checkpoint format** (`save_model` / `load_model`), one folder:
- `config.json`: the HF config of the original architecture (tie_word_embeddings false);
- `slicegpt.json`: {"format": "complaw-slicegpt", "version": 1, "hidden_size": d,
  "embedding_dim": d'_0, "layers": [{"attn_in": ., "mlp_in": ., "out": .}, ...]};
- `slicegpt.safetensors`: the full state dict of the sliced model.
`load_model` builds the HF model from the config, replaces its modules by empty ones of the
recorded widths, and loads the state dict strictly.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from rich.progress import track
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from complaw.compress.base import METHODS, CompressionMethod
from complaw.compress.options import parse_options
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter, adapter_for

FORMAT = "complaw-slicegpt"
VERSION = 1
SPEC_FILE = "slicegpt.json"
WEIGHTS_FILE = "slicegpt.safetensors"

# the layer-level paths the sliced layer re-creates (those of HF llama-style decoder layers)
_LAYER_PATHS = {
    "input_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}


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


class SlicedDecoderLayer(GradientCheckpointingLayer):
    """A sliced pre-norm decoder layer around the HF layer's own attention and MLP modules.

    h = attn_shortcut(x) + self_attn(norm(x));  y = mlp_shortcut(h) + mlp(norm(h)),
    with x of width attn_in, h of width mlp_in and y of width out. The call signature is the HF
    decoder layer's, so the HF model's forward (masks, rotary embeddings, cache) is unchanged.
    """

    def __init__(
        self,
        self_attn: nn.Module,
        mlp: nn.Module,
        attn_shortcut: nn.Linear,
        mlp_shortcut: nn.Linear,
        full_dim: int,
        eps: float,
    ) -> None:
        super().__init__()
        self.input_layernorm = SlicedRMSNorm(full_dim, eps)
        self.self_attn = self_attn
        self.attn_shortcut = attn_shortcut
        self.post_attention_layernorm = SlicedRMSNorm(full_dim, eps)
        self.mlp = mlp
        self.mlp_shortcut = mlp_shortcut

    def dims(self) -> dict[str, int]:
        """The stream widths: attention input, MLP input and layer output."""
        return {
            "attn_in": self.attn_shortcut.in_features,
            "mlp_in": self.mlp_shortcut.in_features,
            "out": self.mlp_shortcut.out_features,
        }

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        attn_out, _ = self.self_attn(
            hidden_states=self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = self.attn_shortcut(hidden_states) + attn_out
        mlp_out = self.mlp(self.post_attention_layernorm(hidden_states))
        return self.mlp_shortcut(hidden_states) + mlp_out


@dataclass(frozen=True)
class SliceOptions:
    """SliceGPT's options (see the module docstring)."""

    num_samples: int | None = None
    batch_size: int = 8
    round_to: int = 8
    slice_head: bool = False

    def __post_init__(self) -> None:
        for name in ("num_samples", "batch_size", "round_to"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CompressionError(f"slicegpt option {name}={value} must be >= 1")


def sliced_dim(hidden_size: int, ratio: float, round_to: int = 8) -> int:
    """d' = d − ceil(r·d / round_to)·round_to: (1 − r)·d rounded down to a multiple of round_to."""
    removed = math.ceil(ratio * hidden_size / round_to - 1e-9) * round_to
    return hidden_size - removed


class _StopForward(Exception):
    """Raised by the capture hook once the first decoder layer's inputs are recorded."""


def _layer_inputs(
    model: PreTrainedModel, layers: nn.ModuleList, blocks: torch.Tensor, batch_size: int
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Per batch, the hidden states and call kwargs (mask, rotary embeddings) entering layer 0."""
    states: list[torch.Tensor] = []
    kwargs: list[dict[str, Any]] = []

    def capture(module: nn.Module, args: tuple, kw: dict[str, Any]) -> None:
        states.append(args[0] if args else kw.pop("hidden_states"))
        kwargs.append(dict(kw))
        raise _StopForward

    handle = layers[0].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        for batch in blocks.split(batch_size):
            try:
                model(input_ids=batch, use_cache=False)
            except _StopForward:
                pass
    finally:
        handle.remove()
    return states, kwargs


def _principal_axes(signals: list[torch.Tensor], norm: nn.Module, where: str) -> torch.Tensor:
    """Eigenvectors (columns, decreasing eigenvalue) of Σ xᵀx of the normalised signals, float64."""
    width = signals[0].shape[-1]
    cov = torch.zeros(width, width, dtype=torch.float64)
    for x in signals:
        s = norm(x).reshape(-1, width).to(torch.float64)
        cov += s.T @ s
    if not torch.isfinite(cov).all():
        raise CompressionError(
            f"non-finite activations at {where} during SliceGPT's PCA; check the model's weights "
            "and dtype (use float32)"
        )
    _, vectors = torch.linalg.eigh(cov)
    return vectors.flip(-1)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> nn.Linear:
    """An nn.Linear holding `weight` [out, in] (and `bias`) in `dtype`, without random init."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight.to(dtype).contiguous())
    if bias is not None:
        layer.bias = nn.Parameter(bias.to(dtype).contiguous())
    return layer


def _embedding(weight: torch.Tensor, old: nn.Embedding, dtype: torch.dtype) -> nn.Embedding:
    embed = nn.Embedding(*weight.shape, padding_idx=old.padding_idx, device="meta")
    embed.weight = nn.Parameter(weight.to(dtype).contiguous())
    return embed


def _transformed(
    linear: nn.Linear, reads: torch.Tensor | None = None, writes: torch.Tensor | None = None
) -> nn.Linear:
    """`linear` reading a stream in basis `reads` (W·reads) and/or writing in `writes` (writesᵀ·W).

    Computed in float64; a bias only changes when the output is rotated (b·writes).
    """
    weight = linear.weight.to(torch.float64)
    bias = linear.bias
    if reads is not None:
        weight = weight @ reads
    if writes is not None:
        weight = writes.T @ weight
        bias = None if bias is None else bias.to(torch.float64) @ writes
    return _linear(weight, bias, linear.weight.dtype)


def _scaled(basis: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """diag(γ)·basis: fuses the RMSNorm scale γ into a reader's input rotation."""
    return norm.weight.to(torch.float64)[:, None] * basis


def _check_model(model: PreTrainedModel, adapter: ArchitectureAdapter) -> None:
    paths = {role: getattr(adapter, role) for role in _LAYER_PATHS}
    if paths != _LAYER_PATHS:
        raise CompressionError(
            f"slicegpt supports decoder layers with HF llama-style paths; adapter {adapter.name!r} "
            f"names {paths}"
        )
    if any(isinstance(layer, SlicedDecoderLayer) for layer in adapter.decoder_layers(model)):
        raise CompressionError("this model is already sliced by SliceGPT; load the original model")


def _check_calibration(
    calibration: torch.Tensor | None, opts: SliceOptions, hidden_size: int, vocab_size: int
) -> torch.Tensor:
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
    if n_blocks * seq_len < hidden_size:
        raise CompressionError(
            f"slicegpt needs at least hidden_size={hidden_size} calibration tokens for its PCA; "
            f"got {n_blocks} blocks × {seq_len} = {n_blocks * seq_len}"
        )
    if int(calibration.min()) < 0 or int(calibration.max()) >= vocab_size:
        raise CompressionError(
            f"slicegpt calibration holds token ids outside [0, {vocab_size}); tokenise it with "
            "the model's tokenizer"
        )
    return calibration.long()


class SliceGPT(CompressionMethod):
    """SliceGPT: rotate each block's residual stream onto its principal axes, slice the rest.

    The ratio r is the fraction of the embedding dimension sliced (see `sliced_dim`).
    """

    needs_calibration: ClassVar[bool] = True
    options_class: ClassVar[type] = SliceOptions  # the study's hook: resolved option ids

    def compress_model(
        self,
        model: PreTrainedModel,
        adapter: ArchitectureAdapter,
        ratio: float,
        calibration: torch.Tensor | None,
        seed: int,
        **options: Any,
    ) -> PreTrainedModel:
        """A sliced copy of `model` (the input model is left untouched, also on error)."""
        opts = parse_options(SliceOptions, options, "slicegpt")
        _check_model(model, adapter)
        config = model.config
        d = config.hidden_size
        d_sliced = sliced_dim(d, ratio, opts.round_to)
        if d_sliced < 1:
            raise CompressionError(
                f"ratio {ratio} slices all {d} embedding dimensions (d' = {d_sliced} after "
                f"rounding the sliced count up to a multiple of round_to={opts.round_to}); use a "
                "smaller ratio or round_to"
            )
        blocks = _check_calibration(calibration, opts, d, config.vocab_size)
        with torch.no_grad():
            sliced = copy.deepcopy(model).eval()
            _slice(sliced, adapter, blocks, d_sliced, opts)
        return sliced.train(model.training)

    def save_model(self, model: PreTrainedModel, folder: Path) -> None:
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

    def load_model(self, folder: Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
        """Rebuild the sliced model that `save_model` wrote into `folder`, in `dtype`."""
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
        adapter = adapter_for(model)
        _skeleton(model, adapter, spec, dtype)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
        return model.eval()


def _untie(model: PreTrainedModel) -> None:
    model.config.tie_word_embeddings = False
    model.all_tied_weights_keys = {}


def _slice(
    model: PreTrainedModel,
    adapter: ArchitectureAdapter,
    blocks: torch.Tensor,
    d_sliced: int,
    opts: SliceOptions,
) -> None:
    """Rotate and slice `model` in place, layer by layer, on the calibration `blocks`."""
    config = model.config
    d = config.hidden_size
    eps = float(config.rms_norm_eps)
    norm = SlicedRMSNorm(d, eps)
    layers = adapter.decoder_layers(model)
    dtype = adapter.part(model, "embed_tokens").weight.dtype

    states, kwargs = _layer_inputs(model, layers, blocks, opts.batch_size)
    basis = _principal_axes(states, norm, "the embeddings")[:, :d_sliced]
    embed = adapter.part(model, "embed_tokens")
    head = adapter.part(model, "lm_head")
    final_norm = adapter.part(model, "final_norm")
    _untie(model)
    adapter.set_part(
        model, "embed_tokens", _embedding(embed.weight.to(torch.float64) @ basis, embed, dtype)
    )
    states = [x @ basis.to(x.dtype) for x in states]

    last = len(layers) - 1
    for idx in track(range(len(layers)), description="SliceGPT: slicing layers", transient=True):
        layer = layers[idx]
        attn, mlp = layer.self_attn, layer.mlp
        in_norm = adapter.part(layer, "input_norm")
        post_norm = adapter.part(layer, "post_attention_norm")

        # attention: read the stream in `basis`; PCA of the stream it produces, in full width
        reads = _scaled(basis, in_norm)
        for role in ("q_proj", "k_proj", "v_proj"):
            adapter.set_part(layer, role, _transformed(adapter.part(layer, role), reads=reads))
        mids = []
        for x, kw in zip(states, kwargs, strict=True):
            out, _ = attn(hidden_states=norm(x), **kw)
            mids.append(x @ basis.T.to(x.dtype) + out)
        mid_basis = _principal_axes(mids, norm, f"layer {idx} (MLP input)")[:, :d_sliced]
        o_proj = _transformed(adapter.part(layer, "o_proj"), writes=mid_basis)
        adapter.set_part(layer, "o_proj", o_proj)
        attn_shortcut = _linear((basis.T @ mid_basis).T, None, dtype)
        states = [h @ mid_basis.to(h.dtype) for h in mids]
        del mids

        # MLP: read in `mid_basis`; PCA of the layer output picks the next basis
        reads = _scaled(mid_basis, post_norm)
        for role in ("gate_proj", "up_proj"):
            adapter.set_part(layer, role, _transformed(adapter.part(layer, role), reads=reads))
        outs = [h @ mid_basis.T.to(h.dtype) + mlp(norm(h)) for h in states]
        width = d if idx == last and not opts.slice_head else d_sliced
        next_basis = _principal_axes(outs, norm, f"layer {idx} (output)")[:, :width]
        down_proj = _transformed(adapter.part(layer, "down_proj"), writes=next_basis)
        adapter.set_part(layer, "down_proj", down_proj)
        mlp_shortcut = _linear((mid_basis.T @ next_basis).T, None, dtype)
        states = [y @ next_basis.to(y.dtype) for y in outs]
        del outs

        layers[idx] = SlicedDecoderLayer(attn, mlp, attn_shortcut, mlp_shortcut, d, eps)
        basis = next_basis

    adapter.set_part(model, "final_norm", SlicedRMSNorm(d, eps))
    adapter.set_part(model, "lm_head", _transformed(head, reads=_scaled(basis, final_norm)))


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

    def empty(in_features: int, out_features: int, bias: bool = False) -> nn.Linear:
        weight = torch.empty(out_features, in_features)
        return _linear(weight, torch.empty(out_features) if bias else None, dtype)

    _untie(model)
    embed = adapter.part(model, "embed_tokens")
    weight = torch.empty(embed.num_embeddings, spec["embedding_dim"])
    adapter.set_part(model, "embed_tokens", _embedding(weight, embed, dtype))
    for idx, dims in enumerate(spec["layers"]):
        layer = layers[idx]
        a, m, o = dims["attn_in"], dims["mlp_in"], dims["out"]
        for role, (fan_in, fan_out) in {
            "q_proj": (a, None), "k_proj": (a, None), "v_proj": (a, None), "o_proj": (None, m),
            "gate_proj": (m, None), "up_proj": (m, None), "down_proj": (None, o),
        }.items():
            old = adapter.part(layer, role)
            new = empty(
                fan_in or old.in_features, fan_out or old.out_features, old.bias is not None
            )
            adapter.set_part(layer, role, new)
        layers[idx] = SlicedDecoderLayer(
            layer.self_attn, layer.mlp, empty(a, m), empty(m, o), d, eps
        )
    adapter.set_part(model, "final_norm", SlicedRMSNorm(d, eps))
    head = adapter.part(model, "lm_head")
    out_width = spec["layers"][-1]["out"]
    adapter.set_part(
        model, "lm_head", empty(out_width, head.out_features, head.bias is not None)
    )


METHODS.add("slicegpt", SliceGPT())
