"""Gemma-3 (model_type gemma3_text) under the compression methods, on a tiny random config.

Gemma-3 differs from llama where it matters here: (1 + w) RMSNorms, per-head q/k norms,
post-attention and post-FFN norms on the block outputs, sliding-window layers
(config.layer_types), embeddings scaled by sqrt(hidden_size), a tanh-GELU MLP and a BOS token.
"""

from __future__ import annotations

import copy

import pytest
import torch
from tests.conftest import GEMMA_BOS, GEMMA_HEAD_DIM, GEMMA_LAYER_TYPES, TINY, tiny_model
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)
from transformers import AutoModelForCausalLM

from complaw.compress import METHODS, CompressionMethod, compress
from complaw.compress.base import check_supported
from complaw.compress.checkpoint import save_compressed
from complaw.errors import CompressionError
from complaw.models import adapter_for

D, WIDTH, HEADS, KV, VOCAB = (TINY[k] for k in ("hidden_size", "intermediate_size",
                                                  "num_attention_heads", "num_key_value_heads",
                                                  "vocab_size"))
HEAD_DIM, BOS, LAYER_TYPES = GEMMA_HEAD_DIM, GEMMA_BOS, GEMMA_LAYER_TYPES
L = len(LAYER_TYPES)


@pytest.fixture
def gemma():
    return tiny_model("gemma3")


@pytest.fixture
def blocks():
    """Text token blocks (no BOS; the methods and the evaluation add it)."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, VOCAB, (4, 32), generator=g)


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def closed_form_params(width: int, layers: int = L) -> int:
    """Gemma-3 parameters: tied embedding + per layer (q, k, v, o, gate/up/down, q/k norms,
    four block norms) + final norm."""
    attn = D * HEADS * HEAD_DIM * 2 + D * KV * HEAD_DIM * 2
    per_layer = attn + 3 * D * width + 2 * HEAD_DIM + 4 * D
    return VOCAB * D + layers * per_layer + D


def test_adapter_is_found_by_model_type(gemma):
    adapter = adapter_for(gemma)
    assert adapter.name == "gemma3"
    assert adapter.needs_bos and not adapter.rotation_invariant
    assert adapter.bos_id(gemma.config) == BOS


def test_post_attention_norm_is_the_norm_the_mlp_reads(gemma, blocks):
    """The adapter's `post_attention_norm` must name the norm whose output the MLP reads
    (pre_feedforward_layernorm), not Gemma's post_attention_layernorm on the attention output."""
    adapter = adapter_for(gemma)
    layer = adapter.decoder_layers(gemma)[0]
    seen = {}
    norm = adapter.part(layer, "post_attention_norm")
    mlp = adapter.part(layer, "gate_proj")
    h1 = norm.register_forward_hook(lambda m, a, out: seen.__setitem__("norm", out))
    h2 = mlp.register_forward_hook(lambda m, a, out: seen.__setitem__("mlp_in", a[0]))
    try:
        logits(gemma, blocks)
    finally:
        h1.remove()
        h2.remove()
    assert torch.equal(seen["norm"], seen["mlp_in"])


def test_with_bos_prepends_one_column(gemma, blocks):
    adapter = adapter_for(gemma)
    inputs = adapter.with_bos(blocks, gemma.config)
    assert inputs.shape == (4, 33)
    assert (inputs[:, 0] == BOS).all() and torch.equal(inputs[:, 1:], blocks)


def test_param_count_is_closed_form(gemma):
    result = compress(gemma, "prunenet", 0.0)
    assert result.params_before == result.params_after
    assert result.params_before["total"] == closed_form_params(WIDTH)
    assert result.params_before["blocks"] == closed_form_params(WIDTH) - VOCAB * D - D


@pytest.mark.parametrize("policy", ["random", "magnitude"])
def test_prunenet_ratio_zero_is_identity(gemma, blocks, policy):
    before = logits(gemma, blocks)
    result = compress(gemma, "prunenet", 0.0, policy=policy)
    assert torch.equal(logits(result.model, blocks), before)


@pytest.mark.parametrize(("ratio", "kept"), [(0.3, 67), (0.5, 48)])
def test_prunenet_counts_and_silenced_neurons(gemma, blocks, ratio, kept):
    """Pruned logits equal the original model's with the removed neurons' down columns zeroed
    (an independent computation), and the count is the closed form at the kept width."""
    silenced = copy.deepcopy(gemma)
    original = [layer.mlp.gate_proj.weight.clone() for layer in gemma.model.layers]
    result = compress(gemma, "prunenet", ratio, seed=3)
    assert result.params_after["total"] == closed_form_params(kept)
    assert result.model.config.intermediate_size == kept
    with torch.no_grad():
        for gate, layer, pruned in zip(
            original, silenced.model.layers, result.model.model.layers, strict=True
        ):
            keep = [int((gate == row).all(dim=1).nonzero()) for row in pruned.mlp.gate_proj.weight]
            removed = sorted(set(range(WIDTH)) - set(keep))
            layer.mlp.down_proj.weight[:, removed] = 0.0
    torch.testing.assert_close(logits(result.model, blocks), logits(silenced, blocks))


@pytest.mark.parametrize(("method", "ratio"), [("prunenet", 0.3), ("layerdrop", 0.25)])
def test_checkpoint_reloads_with_plain_transformers(gemma, blocks, tmp_path, method, ratio):
    result = compress(gemma, method, ratio, calibration=blocks)
    folder = save_compressed(result, tmp_path / method)
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(reloaded) is type(gemma)
    assert reloaded.config.layer_types == result.model.config.layer_types
    torch.testing.assert_close(logits(reloaded, blocks), logits(result.model, blocks))


def test_layerdrop_drops_the_idle_layer_and_keeps_layer_types(gemma, blocks):
    layers = list(gemma.model.layers)
    with torch.no_grad():  # layer 1 (full attention) writes nothing to the residual stream
        layers[1].post_attention_layernorm.weight.fill_(-1.0)  # (1 + w) = 0
        layers[1].post_feedforward_layernorm.weight.fill_(-1.0)
    result = compress(gemma, "layerdrop", 0.3, calibration=blocks)
    model = result.model
    assert list(model.model.layers) == [layers[0], layers[2]]
    assert model.config.layer_types == ["sliding_attention"] * 2
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    assert result.params_after["total"] == closed_form_params(WIDTH, layers=L - 1)
    prompt = blocks[:1, :12]
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(
        model.generate(prompt, use_cache=True, **kwargs),
        model.generate(prompt, use_cache=False, **kwargs),
    )


class _Rotating(CompressionMethod):
    needs_rotation_invariance = True

    def compress_model(self, model, adapter, ratio, calibration, seed, **options):
        raise AssertionError("must not be reached")


def test_rotation_method_refuses_gemma_in_one_line(gemma, tiny_llama):
    with pytest.raises(CompressionError, match="post-norms") as info:
        check_supported("rotating", _Rotating(), adapter_for(gemma))
    assert "\n" not in str(info.value) and "prunenet" in str(info.value)
    check_supported("rotating", _Rotating(), adapter_for(tiny_llama))  # llama is fine


@pytest.mark.skipif(
    not METHODS.get("slicegpt").needs_rotation_invariance,
    reason="slicegpt declares needs_rotation_invariance in its issue-11 rewrite",
)
def test_slicegpt_refuses_gemma(gemma, blocks):
    before = logits(gemma, blocks)
    with pytest.raises(CompressionError, match="cannot compress gemma3 models.*post-norms"):
        compress(gemma, "slicegpt", 0.1, calibration=blocks)
    assert torch.equal(logits(gemma, blocks), before)
