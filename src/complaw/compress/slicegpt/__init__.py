"""SliceGPT (Ashkboos et al., ICLR 2024, arXiv 2401.15024) for RMSNorm pre-norm decoders.

One module per job: `layers` (the sliced model's modules), `options` (options and input
checks), `algorithm` (rotate and slice in place), `checkpoint` (the saved format), `method`
(the registered `SliceGPT` method). Layer paths come from the architecture adapter's roles
(`ArchitectureAdapter.sub_blocks`: each sub-block's module, norm, readers and writer).

**Computational invariance.** Each RMSNorm's scale is fused into the linear layers that read it
(q/k/v after the input norm, gate/up after the post-attention norm, lm_head after the final
norm), leaving weightless norms. A weightless RMSNorm commutes with any orthogonal Q
(RMSNorm(xQ) = RMSNorm(x)Q), so the residual stream can be expressed in a rotated basis: layers
that read it get W Q, layers that write it get Qᵀ W (biases of writers: b Q; q/k/v biases, as in
Qwen2, live in the readers' output space and are left alone). Layers that normalise a
sub-block's output before the residual add (Gemma-3) break this and are refused.

**A basis per block (paper, Sec. 3).** Every sub-block has its own basis: the attention input of
layer ℓ uses Q_ℓ, its MLP input uses Q'_ℓ, and layer ℓ's output (= layer ℓ+1's input) uses
Q_ℓ+1. Each Q is the eigenbasis (float64 `eigh`, columns by decreasing eigenvalue) of Σ sᵀs
over the calibration tokens. The residual path between two bases is carried by shortcut
matrices: `attn_shortcut` = Q_ℓᵀ Q'_ℓ and `mlp_shortcut` = Q'_ℓᵀ Q_ℓ+1. The embedding is rotated
by Q_0. Layers are processed in order: the calibration activations entering layer ℓ are
produced by the already-sliced layers before it.

**The PCA signal s (`basis` option).** `"residual"`: the un-normalised residual stream x, as
the reference implementation (microsoft/TransformerCompression) does; `"normalised"`: the
signal its readers see, x / rms(x) (complaw's first version). At r = 0 both are exact.

**Centred embedding rows (`centre_embeddings`, default True).** Before slicing, each row of the
embedding (so each input of layer 0) has its mean over the hidden dimensions subtracted; the
lm_head keeps the original matrix. The reference does this for every model in its LayerNorm
fusion (`fuse_modules`, written for OPT's mean-subtracting LayerNorm). On an RMSNorm model it is
*not* function-preserving: SmolLM2's dense WikiText-2 perplexity moves from 22.879 to 22.897
(+0.08 %). It was the whole of the gap to the reference measured in issue 11: with it, our
residual-basis slicing reproduces the reference to ≤ 0.03 % at every ratio (docs/compression.md),
and it lowers perplexity by 1-4 % at r = 0.1-0.7. `centre_embeddings=False` keeps r = 0 exact.

The defaults (`"residual"`, centred) and the measurements behind them: docs/compression.md.

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
32 × 1024 (at least hidden_size tokens are required). The bases fit the calibration domain:
calibrating on one corpus and evaluating on another costs much more than in-domain calibration.
The method is deterministic: `seed` is unused.

In place, options, memory and time: docs/compression.md.
"""

from complaw.compress.base import METHODS
from complaw.compress.slicegpt.layers import SlicedDecoderLayer, SlicedRMSNorm
from complaw.compress.slicegpt.method import SliceGPT
from complaw.compress.slicegpt.options import BASES, SliceOptions, sliced_dim

__all__ = [
    "BASES", "SliceGPT", "SliceOptions", "SlicedDecoderLayer", "SlicedRMSNorm", "sliced_dim",
]

METHODS.add("slicegpt", SliceGPT())
