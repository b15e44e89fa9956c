"""The SliceGPT algorithm: rotate and slice a model in place, layer by layer, on calibration data.

Memory: the model is changed in place (no copy); the calibration activations of the residual
stream are held once (each batch is replaced by the next stream's batch as it is computed); the
embedding is rotated into a new (sliced) matrix and the lm_head in place, a chunk of rows at a
time, so no vocabulary-sized float64 copy exists. A failure part-way leaves the model
half-rotated: reload it (a checkpoint is only ever written from a finished model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from complaw.compress.slicegpt.layers import (
    SlicedDecoderLayer,
    SlicedRMSNorm,
    new_embedding,
    new_linear,
    run_sub_block,
)
from complaw.compress.slicegpt.options import SliceOptions
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter, SubBlock
from complaw.progress import track

F64 = torch.float64
ROW_CHUNK = 1024  # rows of the embedding / lm_head rotated at a time


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


class Stream:
    """The calibration activations of the residual stream, held once, batch by batch.

    `norm` is the weightless RMSNorm the stream's readers see; `pca_norm` is applied to the
    signal before its PCA (`norm` for the normalised basis, None for the residual stream).
    """

    def __init__(
        self,
        states: list[torch.Tensor],
        kwargs: list[dict[str, Any]],
        norm: SlicedRMSNorm,
        pca_norm: SlicedRMSNorm | None,
    ) -> None:
        self.states, self.kwargs, self.norm, self.pca_norm = states, kwargs, norm, pca_norm

    def advance(
        self, step: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor], where: str
    ) -> torch.Tensor:
        """Replace each batch x by step(x, layer kwargs); return the principal axes of the new
        stream (float64 eigenvectors of Σ sᵀs as columns, by decreasing eigenvalue)."""
        cov = torch.zeros((), dtype=F64)
        for i, (x, kw) in enumerate(zip(self.states, self.kwargs, strict=True)):
            y = step(x, kw)
            self.states[i] = y
            signal = y if self.pca_norm is None else self.pca_norm(y)
            signal = signal.reshape(-1, signal.shape[-1]).to(F64)
            cov = cov + signal.T @ signal
        if not torch.isfinite(cov).all():
            raise CompressionError(
                f"non-finite activations at {where} during SliceGPT's PCA; check the model's "
                "weights and dtype (use float32). The model was changed in place: reload it"
            )
        _, vectors = torch.linalg.eigh(cov)
        return vectors.flip(-1)

    def rotate(self, basis: torch.Tensor) -> None:
        """Express every batch in `basis` (columns): x ← x·basis."""
        for i, x in enumerate(self.states):
            self.states[i] = x @ basis.to(x.dtype)


def _matmul_rows(
    weight: torch.Tensor, right: torch.Tensor, out: torch.Tensor, centre: bool = False
) -> torch.Tensor:
    """out = weight·right in float64, ROW_CHUNK rows at a time (`out` may be `weight`), so that
    no float64 copy of a whole matrix is ever held; `centre` subtracts each row's mean first."""
    for start in range(0, weight.shape[0], ROW_CHUNK):
        rows = slice(start, start + ROW_CHUNK)
        left = weight[rows].to(F64)
        if centre:
            left = left - left.mean(-1, keepdim=True)
        out[rows] = (left @ right).to(out.dtype)
    return out


def _reading(linear: nn.Linear, reads: torch.Tensor) -> nn.Linear:
    """`linear` reading the stream in basis `reads` [d, width]: W·reads (bias unchanged)."""
    weight = linear.weight
    out = torch.empty(weight.shape[0], reads.shape[1], dtype=weight.dtype)
    return new_linear(_matmul_rows(weight, reads, out), linear.bias, weight.dtype)


def _writing(linear: nn.Linear, writes: torch.Tensor) -> nn.Linear:
    """`linear` writing the stream in basis `writes` [d, width]: writesᵀ·W, bias b·writes."""
    weight = linear.weight
    out = torch.empty(writes.shape[1], weight.shape[1], dtype=weight.dtype)
    _matmul_rows(weight.T, writes, out.T)  # (writesᵀ·W)ᵀ = Wᵀ·writes
    bias = None if linear.bias is None else linear.bias.to(F64) @ writes
    return new_linear(out, bias, weight.dtype)


def _slice_sub_block(
    layer: nn.Module,
    adapter: ArchitectureAdapter,
    block: SubBlock,
    stream: Stream,
    basis: torch.Tensor,
    width: int,
    where: str,
) -> tuple[torch.Tensor, nn.Linear]:
    """Rotate and slice one residual sub-block x ← x + module(norm(x)) whose input stream is in
    `basis` [d, d_in]; returns the basis of its output stream [d, width] and the shortcut.

    The readers get W·diag(γ)·basis (the norm's scale fused in); the stream it produces is
    computed in full original coordinates, its PCA picks the next basis; the writer gets
    nextᵀ·W and the shortcut maps the input basis onto the next one (basisᵀ·next).
    """
    reads = adapter.norm_scale(adapter.part(layer, block.norm)).to(F64)[:, None] * basis
    for role in block.inputs:
        adapter.set_part(layer, role, _reading(adapter.part(layer, role), reads))
    module = adapter.part(layer, block.module)
    back = basis.T

    def step(x: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
        return x @ back.to(x.dtype) + run_sub_block(block, module, stream.norm(x), kwargs)

    after = stream.advance(step, where)[:, :width]
    writer = adapter.part(layer, block.output)
    adapter.set_part(layer, block.output, _writing(writer, after))
    stream.rotate(after)
    shortcut = new_linear((basis.T @ after).T, None, writer.weight.dtype)
    return after, shortcut


def untie(model: PreTrainedModel) -> None:
    """Mark the model's embedding and lm_head as separate matrices (in config and HF's ties)."""
    model.config.tie_word_embeddings = False
    model.all_tied_weights_keys = {}


def slice_in_place(
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
    embed = adapter.part(model, "embed_tokens")
    head = adapter.part(model, "lm_head")
    final_norm = adapter.part(model, "final_norm")

    states, kwargs = _layer_inputs(model, layers, blocks, opts.batch_size)
    if opts.centre_embeddings:  # layer 0's input is an embedding row (times a constant)
        for x in states:
            x.sub_(x.to(F64).mean(-1, keepdim=True).to(x.dtype))
    stream = Stream(states, kwargs, norm, norm if opts.basis == "normalised" else None)
    basis = stream.advance(lambda x, _: x, "the embeddings")[:, :d_sliced]
    stream.rotate(basis)
    untie(model)
    weight = torch.empty(embed.num_embeddings, d_sliced, dtype=embed.weight.dtype)
    _matmul_rows(embed.weight, basis, weight, centre=opts.centre_embeddings)
    adapter.set_part(model, "embed_tokens", new_embedding(weight, embed))
    del embed, weight  # for tied models the old matrix lives on as the lm_head only

    last = len(layers) - 1
    for idx in track(range(len(layers)), description="SliceGPT: slicing layers"):
        layer = layers[idx]
        out_width = d if idx == last and not opts.slice_head else d_sliced
        modules, shortcuts = {}, {}
        for block, width in zip(adapter.sub_blocks(), (d_sliced, out_width), strict=True):
            basis, shortcuts[block.name] = _slice_sub_block(
                layer, adapter, block, stream, basis, width, f"layer {idx} ({block.name} output)"
            )
            modules[block.name] = adapter.part(layer, block.module)
        layers[idx] = SlicedDecoderLayer(adapter, modules, shortcuts, d, eps)
    del stream

    reads = adapter.norm_scale(final_norm).to(F64)[:, None] * basis
    adapter.set_part(model, "final_norm", SlicedRMSNorm(d, eps))
    if reads.shape[1] == d:  # the head keeps its width: rotate it in place
        _matmul_rows(head.weight.data, reads, head.weight.data)
    else:
        adapter.set_part(model, "lm_head", _reading(head, reads))
