"""SliceGPT on tiny random llama / qwen2 models: invariance, exact sizes, save/load, bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from tests.conftest import TINY, families, tiny_model
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)
from transformers import AutoModelForCausalLM, LlamaConfig

from complaw.compress import compress
from complaw.compress.checkpoint import load_compressed, save_compressed
from complaw.compress.slicegpt import BASES, SlicedRMSNorm, SliceGPT, sliced_dim
from complaw.errors import CompressionError
from complaw.models.adapters import adapter_for
from complaw.models.params import count_parameters


def slice_model(model, ratio, blocks, **options):
    return SliceGPT().compress_model(model, adapter_for(model), ratio, blocks, 0, **options)


def logits(model, blocks):
    with torch.no_grad():
        return model(blocks).logits


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def randomised(model):
    """RMSNorm scales start at 1 and biases at 0; make them random so that both are tested."""
    g = torch.Generator().manual_seed(2)
    for module in model.modules():
        if hasattr(module, "variance_epsilon"):
            module.weight.data = torch.rand(module.weight.shape, generator=g) + 0.5
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            module.bias.data = torch.randn(module.bias.shape, generator=g) * 0.1
    return model


def offset_rows(model):
    """Give every embedding row its own mean (random init leaves the row means near zero)."""
    weight = model.model.embed_tokens.weight
    g = torch.Generator().manual_seed(3)
    weight.data += torch.randn(weight.shape[0], 1, generator=g) * weight.std()
    return model


def biased_llama():
    """A tiny llama whose every projection has a bias."""
    torch.manual_seed(0)
    config = LlamaConfig(**TINY, attention_bias=True, mlp_bias=True)
    return randomised(AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval())


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("family", families(rotation_invariant=True))
def test_zero_ratio_keeps_logits(family, tie, basis, token_blocks):
    model = randomised(tiny_model(family, tie=tie))
    before = logits(model, token_blocks)
    embed_before = model.model.embed_tokens.weight.clone()
    sliced = slice_model(model, 0.0, token_blocks, batch_size=3, basis=basis,
                         centre_embeddings=False)
    assert sliced is model  # sliced in place
    assert relative_error(logits(sliced, token_blocks), before) < 1e-4
    # the rotation did change the weights (a no-op would pass the check above trivially)
    embed = sliced.model.embed_tokens.weight
    assert not torch.allclose(embed, embed_before, atol=1e-3)
    if tie:
        assert sliced.lm_head.weight is not embed
        assert not sliced.config.tie_word_embeddings


def test_zero_ratio_keeps_logits_with_output_biases(token_blocks):
    """o_proj / down_proj biases rotate with their outputs; q/k/v/gate/up biases stay."""
    model = biased_llama()
    before = logits(model, token_blocks)
    sliced = slice_model(model, 0.0, token_blocks, centre_embeddings=False)
    assert relative_error(logits(sliced, token_blocks), before) < 1e-4


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("tie", [False, True])
def test_zero_ratio_with_centred_embeddings_is_the_centred_model(tie, basis, token_blocks):
    """At r = 0 the default (centre_embeddings=True) computes the model whose embedding rows have
    their mean subtracted, and the lm_head keeps the original (tied) matrix."""
    model, centred = (offset_rows(randomised(tiny_model("llama", tie=tie))) for _ in range(2))
    centred.lm_head.weight = torch.nn.Parameter(centred.lm_head.weight.detach().clone())
    embed = centred.model.embed_tokens.weight.detach().double()
    centred.model.embed_tokens.weight = torch.nn.Parameter(
        (embed - embed.mean(-1, keepdim=True)).float())
    expected, original = logits(centred, token_blocks), logits(model, token_blocks)
    assert relative_error(expected, original) > 1e-3  # centring changes an RMSNorm model
    sliced = slice_model(model, 0.0, token_blocks, batch_size=3, basis=basis)
    assert relative_error(logits(sliced, token_blocks), expected) < 1e-4


def test_zero_ratio_generates_the_same_tokens(tiny_qwen2, token_blocks):
    """The HF forward with a KV cache runs through the sliced layers unchanged."""
    model = randomised(tiny_qwen2)
    sliced = slice_model(model, 0.0, token_blocks)
    prompt = token_blocks[:1, :8]
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(sliced.generate(prompt, **kwargs), model.generate(prompt, **kwargs))


def expected_parameters(family: str, ratio: float, slice_head: bool) -> int:
    """Closed form of the sliced model's parameter count, from the tiny config alone."""
    d, ffn, vocab, n_layers = TINY["hidden_size"], TINY["intermediate_size"], TINY["vocab_size"], 3
    head_dim = d // TINY["num_attention_heads"]
    q_out = TINY["num_attention_heads"] * head_dim
    kv_out = TINY["num_key_value_heads"] * head_dim
    ds = d - 8 * math.ceil(ratio * d / 8)  # ceil(r·d / 8)·8 dimensions are sliced
    total = vocab * ds  # embedding; norms have no parameters left
    for layer in range(n_layers):
        out = d if layer == n_layers - 1 and not slice_head else ds
        total += ds * (q_out + 2 * kv_out)  # q, k, v read the sliced stream
        total += (q_out + 2 * kv_out) if family == "qwen2" else 0  # q/k/v biases
        total += q_out * ds  # o_proj writes the sliced stream
        total += 2 * ds * ffn + ffn * out  # gate, up, down
        total += ds * ds + ds * out  # attention and MLP shortcuts
    return total + vocab * (ds if slice_head else d)  # untied lm_head


@pytest.mark.parametrize("slice_head", [False, True])
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("family", families(rotation_invariant=True))
def test_parameter_count_matches_closed_form(family, tie, slice_head, token_blocks):
    model = tiny_model(family, tie=tie)
    adapter = adapter_for(model)
    before = count_parameters(model, adapter)
    sliced = slice_model(model, 0.5, token_blocks, slice_head=slice_head)
    after = count_parameters(sliced, adapter)
    assert after["total"] == expected_parameters(family, 0.5, slice_head)
    assert after["total"] < before["total"]
    assert after["blocks"] < before["blocks"]
    assert sliced.model.embed_tokens.weight.shape[1] == 32
    assert sliced.lm_head.weight.shape[1] == (32 if slice_head else 64)
    assert logits(sliced, token_blocks).shape == (4, 32, TINY["vocab_size"])


@pytest.mark.parametrize("basis", BASES)
def test_larger_ratio_loses_more(basis, token_blocks):
    before = logits(tiny_model("llama"), token_blocks)
    errors = [
        relative_error(
            logits(slice_model(tiny_model("llama"), r, token_blocks, basis=basis,
                               centre_embeddings=False), token_blocks),
            before,
        )
        for r in (0.0, 0.25, 0.5)
    ]
    assert errors[0] < 1e-4 < errors[1] < errors[2]


@pytest.mark.parametrize("centre", [False, True])
@pytest.mark.parametrize("basis", BASES)
def test_embedding_keeps_the_principal_directions(tiny_llama, token_blocks, basis, centre):
    """The sliced embedding spans the top eigenvectors of the PCA signal: the normalised
    embedding or the raw one (the residual stream entering layer 0), each row centred or not."""
    x = tiny_llama.model.embed_tokens(token_blocks).detach().double().reshape(-1, 64)
    if centre:
        x = x - x.mean(-1, keepdim=True)
    rms = x.pow(2).mean(-1, keepdim=True).add(tiny_llama.config.rms_norm_eps).sqrt()
    scale = rms if basis == "normalised" else torch.ones_like(rms)
    signal = x / scale
    top = torch.linalg.eigvalsh(signal.T @ signal)[-40:].sum().item()
    sliced = slice_model(tiny_llama, 0.3, token_blocks, basis=basis, centre_embeddings=centre)
    y = sliced.model.embed_tokens(token_blocks).detach().double().reshape(-1, 40)
    kept = (y / scale).pow(2).sum().item()  # energy of the signal in the kept basis
    assert kept == pytest.approx(top, rel=1e-6)


def test_sliced_rms_norm_divides_by_the_full_width():
    x = torch.randn(3, 5, 48)
    expected = x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) / 64 + 1e-6)
    torch.testing.assert_close(SlicedRMSNorm(64, 1e-6)(x), expected)
    hf = tiny_model("llama").model.norm  # unit weight: the unsliced case is HF's RMSNorm
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(SlicedRMSNorm(64, hf.variance_epsilon)(x), hf(x))


def test_sliced_dim_rounding():
    assert sliced_dim(576, 0.0) == 576
    assert sliced_dim(576, 0.1) == 512  # the reference: int(518.4) = 518 → 512
    assert sliced_dim(576, 0.3) == 400
    assert sliced_dim(576, 0.5) == 288
    assert sliced_dim(100, 0.0) == 100  # r = 0 never slices
    assert sliced_dim(64, 0.9) == 0


def test_save_load_roundtrip(tiny_qwen2, token_blocks, tmp_path):
    method = SliceGPT()
    sliced = slice_model(tiny_qwen2, 0.3, token_blocks)
    method.save_model(sliced, tmp_path)
    spec = json.loads((tmp_path / "slicegpt.json").read_text())
    assert spec["embedding_dim"] == 40
    assert spec["layers"][-1] == {"attn_in": 40, "mlp_in": 40, "out": 64}
    loaded = method.load_model(tmp_path)
    assert torch.equal(logits(loaded, token_blocks), logits(sliced, token_blocks))
    adapter = adapter_for(loaded)
    assert count_parameters(loaded, adapter) == count_parameters(sliced, adapter)


def test_compressed_checkpoint_roundtrip(tiny_llama, token_blocks, tmp_path):
    """Through complaw's checkpoint manifest, which dispatches to SliceGPT's save/load."""
    result = compress(tiny_llama, "slicegpt", 0.5, token_blocks, batch_size=2)
    save_compressed(result, tmp_path / "ckpt")
    loaded, manifest = load_compressed(tmp_path / "ckpt")
    assert manifest.method == "slicegpt" and manifest.options == {"batch_size": 2}
    assert torch.equal(logits(loaded, token_blocks), logits(result.model, token_blocks))


def test_sliced_model_trains_with_gradient_checkpointing(tiny_llama, token_blocks):
    """LoRA recovery needs gradients through the shortcuts and sliced layers."""
    sliced = slice_model(tiny_llama, 0.5, token_blocks)
    sliced.train()
    sliced.activation_checkpointing_enable()
    sliced(token_blocks, labels=token_blocks).loss.backward()
    grads = [sliced.model.layers[0].attn_shortcut.weight.grad, sliced.lm_head.weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    ("ratio", "options", "match"),
    [
        (0.3, {"calibration_size": 4}, "unknown option.*calibration_size.*valid.*num_samples"),
        (0.3, {"batch_size": 0}, "batch_size=0"),
        (0.3, {"batch_size": 2.0}, "batch_size=2.0"),
        (0.3, {"slice_head": "yes"}, "slice_head"),
        (0.9, {}, "slices all 64"),
        (0.3, {"num_samples": 9}, "num_samples=9 .* got 4"),
    ],
)
def test_bad_options_raise(tiny_llama, token_blocks, ratio, options, match):
    with pytest.raises(CompressionError, match=match):
        slice_model(tiny_llama, ratio, token_blocks, **options)


def test_bad_calibration_raises(tiny_llama, token_blocks):
    with pytest.raises(CompressionError, match="needs calibration"):
        compress(tiny_llama, "slicegpt", 0.3)
    with pytest.raises(CompressionError, match="hidden_size=64 .* 1 blocks × 32 = 32"):
        slice_model(tiny_llama, 0.3, token_blocks, num_samples=1)
    with pytest.raises(CompressionError, match="integer token blocks"):
        slice_model(tiny_llama, 0.3, token_blocks.float())
    with pytest.raises(CompressionError, match=r"outside \[0, 211\)"):
        slice_model(tiny_llama, 0.3, token_blocks + 211)
    with pytest.raises(CompressionError, match="outside"):
        compress(tiny_llama, "slicegpt", 1.0, token_blocks)


def test_non_finite_activations_name_the_layer(tiny_llama, token_blocks):
    tiny_llama.model.layers[1].self_attn.o_proj.weight.data[0, 0] = float("nan")
    weight = tiny_llama.model.layers[0].self_attn.q_proj.weight.clone()
    with pytest.raises(CompressionError, match="non-finite activations at layer 1.*reload"):
        slice_model(tiny_llama, 0.3, token_blocks)
    # sliced in place: layer 0 was already rotated when layer 1 failed
    assert not torch.equal(tiny_llama.model.layers[0].self_attn.q_proj.weight, weight)


@pytest.mark.parametrize(
    "bad", [{"basis": "pca"}, {"batch_size": 0}, {"num_samples": 9}, {"ratio": 0.9},
            {"calibration": "x"}],
)
def test_bad_input_leaves_the_model_unchanged(tiny_llama, token_blocks, bad):
    """Every check runs before the in-place slicing starts."""
    state = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    args = {"ratio": 0.3, "calibration": token_blocks, **bad}
    options = {k: v for k, v in bad.items() if k not in args or k not in ("ratio", "calibration")}
    with pytest.raises(CompressionError):
        slice_model(tiny_llama, args["ratio"], args["calibration"], **options)
    after = tiny_llama.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())


def test_a_family_without_rotation_invariance_is_refused(tiny_llama, token_blocks):
    """A family that normalises sub-block outputs (Gemma-3) breaks the rotation invariance."""
    adapter = dataclasses.replace(adapter_for(tiny_llama), name="postnorm",
                                  rotation_invariant=False, rotation_note="it has post-norms")
    with pytest.raises(CompressionError, match="postnorm models: it has post-norms; use"):
        SliceGPT().compress_model(tiny_llama, adapter, 0.3, token_blocks, 0)


def test_layer_paths_come_from_the_adapter(token_blocks):
    """SliceGPT works from the adapter's roles: an adapter that names the MLP's readers in
    another order still slices to the same model."""
    model, reordered = tiny_model("llama"), tiny_model("llama")
    adapter = adapter_for(model)
    other = dataclasses.replace(adapter, mlp_inputs=("up_proj", "gate_proj"))
    a = SliceGPT().compress_model(model, adapter, 0.3, token_blocks, 0)
    b = SliceGPT().compress_model(reordered, other, 0.3, token_blocks, 0)
    torch.testing.assert_close(logits(a, token_blocks), logits(b, token_blocks))
    # a role left out of the adapter is left unsliced, so the forward breaks
    broken = dataclasses.replace(adapter, mlp_inputs=("gate_proj",))
    with pytest.raises(RuntimeError):
        SliceGPT().compress_model(tiny_model("llama"), broken, 0.3, token_blocks, 0)


def test_already_sliced_model_is_refused(tiny_llama, token_blocks):
    sliced = slice_model(tiny_llama, 0.3, token_blocks)
    assert sliced is tiny_llama
    with pytest.raises(CompressionError, match="already sliced"):
        slice_model(sliced, 0.3, token_blocks)


def test_load_rejects_a_foreign_folder(tmp_path):
    (tmp_path / "slicegpt.json").write_text('{"format": "other"}')
    with pytest.raises(CompressionError, match="not a complaw-slicegpt"):
        SliceGPT().load_model(tmp_path)
