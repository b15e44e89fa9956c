"""PruneNet: slicing FFN neurons chosen by the random, magnitude and learned policies."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.conftest import TINY, tiny_model
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)
from torch import nn

from complaw.compress import compress
from complaw.compress.prunenet import (
    FFN,
    LearnedPolicy,
    gumbel_order,
    ks_distance,
    row_features,
    singular_values,
    sliced_linear,
)
from complaw.errors import CompressionError
from complaw.models import adapter_for

POLICIES = ["random", "magnitude", "learned"]
CHEAP = {"learned": {"steps": 2, "samples": 2}}  # keep the learned policy fast on tiny models
WIDTH, D, L = TINY["intermediate_size"], TINY["hidden_size"], TINY["num_hidden_layers"]


def options(policy: str) -> dict:
    return {"policy": policy, **CHEAP.get(policy, {})}


def logits(model, blocks):
    with torch.no_grad():
        return model(blocks).logits


def kept_indices(original: nn.Linear, pruned: nn.Linear) -> list[int]:
    """Which rows of `original` survive in `pruned` (rows are matched exactly)."""
    return [int((original.weight == row).all(dim=1).nonzero()) for row in pruned.weight]


@pytest.mark.parametrize("policy", POLICIES)
def test_ratio_zero_leaves_logits_unchanged(tiny_any, token_blocks, policy):
    before = logits(tiny_any, token_blocks)
    result = compress(tiny_any, "prunenet", 0.0, **options(policy))
    assert torch.equal(logits(result.model, token_blocks), before)
    assert result.params_after == result.params_before


# neurons kept of the 96, (1 - r) * 96 rounded half up, worked out by hand
KEPT = {0.1: 86, 0.3: 67, 0.5: 48, 0.9: 10}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("ratio", sorted(KEPT))
def test_parameter_count_follows_closed_form(tiny_any, policy, ratio):
    result = compress(tiny_any, "prunenet", ratio, **options(policy))
    removed = L * (WIDTH - KEPT[ratio]) * 3 * D  # gate + up rows and down columns, no biases
    assert result.params_after["total"] == result.params_before["total"] - removed
    assert result.params_after["blocks"] == result.params_before["blocks"] - removed
    assert result.model.config.intermediate_size == KEPT[ratio]
    mlp = result.model.model.layers[0].mlp
    assert mlp.gate_proj.weight.shape == mlp.up_proj.weight.shape == (KEPT[ratio], D)
    assert mlp.down_proj.weight.shape == (D, KEPT[ratio])


@pytest.mark.parametrize("policy", POLICIES)
def test_pruned_ffn_equals_original_with_removed_neurons_silenced(policy):
    model = tiny_model("qwen2")
    original = copy.deepcopy(model)
    compress(model, "prunenet", 0.5, seed=3, **options(policy))
    x = torch.randn(2, 5, D)
    for old, new in zip(original.model.layers, model.model.layers, strict=True):
        kept = kept_indices(old.mlp.gate_proj, new.mlp.gate_proj)
        assert kept == sorted(kept) and len(set(kept)) == len(kept)
        silenced = torch.ones(WIDTH, dtype=torch.bool)
        silenced[kept] = False
        with torch.no_grad():
            old.mlp.gate_proj.weight[silenced] = 0.0  # silu(0) = 0: the neuron adds nothing
            torch.testing.assert_close(new.mlp(x), old.mlp(x))


@pytest.mark.parametrize("policy", ["random", "learned"])
def test_seed_fixes_the_choice(policy):
    def run(seed):
        result = compress(tiny_model("llama"), "prunenet", 0.3, seed=seed, **options(policy))
        return result.model.state_dict()

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    gates = [k for k in first if "gate_proj" in k]
    assert any(not torch.equal(first[k], other[k]) for k in gates)


def test_magnitude_keeps_the_largest_neurons():
    model = tiny_model("llama")
    original = copy.deepcopy(model)
    compress(model, "prunenet", 0.25, policy="magnitude", seed=5)
    for old, new in zip(original.model.layers, model.model.layers, strict=True):
        m = old.mlp
        score = (
            m.gate_proj.weight.norm(dim=1) * m.up_proj.weight.norm(dim=1)
            * m.down_proj.weight.norm(dim=0)
        )
        expected = sorted(score.topk(72).indices.tolist())
        assert kept_indices(m.gate_proj, new.mlp.gate_proj) == expected


def spectral_gap(gate: torch.Tensor, rows: torch.Tensor) -> float:
    """The learned policy's distance: KS between rescaled kept and original singular values."""
    scale = (gate.shape[0] / len(rows)) ** 0.5
    return ks_distance(singular_values(gate[rows]) * scale, singular_values(gate))


def test_learned_policy_learns_to_keep_the_spectrum():
    """Rows of log-normal norms: the trained policy's draws keep the spectrum's shape much
    better than its initial (near-uniform) draws and than any of 20 uniform choices."""
    g = torch.Generator().manual_seed(0)
    gate = torch.randn(128, 32, generator=g) * torch.randn(128, 1, generator=g).exp()
    ffn = FFN(0, gate, torch.randn(128, 32, generator=g), torch.randn(32, 128, generator=g))
    policy, initial = LearnedPolicy(steps=30, samples=4), LearnedPolicy()
    rows = policy.select(ffn, 64, torch.Generator().manual_seed(1))
    assert len(set(rows.tolist())) == 64
    features = row_features(ffn)
    initial._policy(features.shape[1], torch.Generator().manual_seed(1))  # the same start

    def mean_gap(net) -> float:
        draws = torch.Generator().manual_seed(5)
        with torch.no_grad():
            logits = net(features).squeeze(1)
        return sum(spectral_gap(gate, gumbel_order(logits, draws)[:64]) for _ in range(16)) / 16

    assert mean_gap(policy._net) < 0.6 * mean_gap(initial._net)
    uniform = [spectral_gap(gate, torch.randperm(128, generator=g)[:64]) for _ in range(20)]
    assert spectral_gap(gate, rows) < 0.7 * min(uniform)


def test_singular_values_and_ks_distance():
    matrix = torch.randn(40, 12)
    torch.testing.assert_close(
        singular_values(matrix), torch.linalg.svdvals(matrix).flip(0), rtol=1e-3, atol=1e-4
    )
    torch.testing.assert_close(
        singular_values(matrix.T), torch.linalg.svdvals(matrix).flip(0), rtol=1e-3, atol=1e-4
    )
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert ks_distance(a, a) == 0.0
    assert ks_distance(a, a + 10) == 1.0
    assert ks_distance(a, torch.tensor([2.5, 3.5, 4.5, 5.5])) == 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sliced_linear_keeps_bias_dtype_and_outputs(dtype):
    torch.manual_seed(0)
    linear = nn.Linear(5, 7, bias=True).to(dtype)
    index = torch.tensor([0, 3, 6])
    x = torch.randn(2, 5, dtype=dtype)
    rows = sliced_linear(linear, index, dim=0)
    assert rows.weight.dtype == rows.bias.dtype == dtype
    assert torch.equal(rows(x), linear(x)[:, index])
    cols = sliced_linear(linear, torch.tensor([1, 4]), dim=1)
    masked = torch.zeros_like(x)
    masked[:, [1, 4]] = x[:, [1, 4]]
    torch.testing.assert_close(cols(x[:, [1, 4]]), linear(masked))
    assert torch.equal(cols.bias, linear.bias)


def test_ratio_outside_unit_interval_is_rejected(tiny_llama):
    for ratio in (1.0, -0.1, 1.5):
        with pytest.raises(CompressionError, match="outside"):
            compress(tiny_llama, "prunenet", ratio)


def test_ratio_leaving_no_neuron_is_rejected_before_any_change(tiny_llama):
    before = copy.deepcopy(tiny_llama.state_dict())
    with pytest.raises(CompressionError, match="leaves no FFN neuron"):
        compress(tiny_llama, "prunenet", 0.996)
    assert tiny_llama.config.intermediate_size == WIDTH
    assert all(torch.equal(v, tiny_llama.state_dict()[k]) for k, v in before.items())


def test_unknown_policy_lists_the_known_ones(tiny_llama):
    with pytest.raises(CompressionError, match="learned, magnitude, random"):
        compress(tiny_llama, "prunenet", 0.3, policy="oracle")


@pytest.mark.parametrize(
    ("policy", "bad", "message"),
    [
        ("random", {"steps": 3}, "unknown option.*steps.*valid options: none"),
        ("learned", {"epochs": 3}, r"unknown option.*epochs.*steps \(int\)"),
        ("learned", {"steps": "many"}, "steps='many'.*must be int"),
        ("learned", {"steps": True}, "must be int"),
        ("learned", {"samples": 1}, "samples=1 must be >= 2"),
        ("learned", {"lr": 0}, "lr=0.0 must be > 0"),
    ],
)
def test_bad_options_are_named(tiny_llama, policy, bad, message):
    with pytest.raises(CompressionError, match=message):
        compress(tiny_llama, "prunenet", 0.3, policy=policy, **bad)


def test_ffn_view_reads_the_adapter_parts(tiny_qwen2):
    adapter = adapter_for(tiny_qwen2)
    ffn = FFN.of(tiny_qwen2.model.layers[1], adapter, 1)
    assert ffn.size == WIDTH and ffn.gate.shape == ffn.up.shape == (WIDTH, D)
    assert ffn.down.shape == (D, WIDTH)
