"""LoRA training and merging on tiny random Llama / Qwen2 models (real peft, real loss)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.conftest import families, tiny_model
from tests.unit.recover.recover_fixtures import SEQ, config

from complaw.compress.checkpoint import load_compressed
from complaw.errors import ConfigError
from complaw.models import adapter_for
from complaw.recover import (
    PROJECTIONS,
    RecoveryError,
    lora_targets,
    merge,
    train_lora,
    training_batches,
    training_rows,
)
from complaw.recover.train import resolve_device


def random_batches(model, tokens=300, batch_size=4, seed=5):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (tokens,), generator=g)
    return training_batches(training_rows(ids, tokens, SEQ, "random ids"), batch_size, pad_id=0)


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("family", families())
def test_only_lora_targets_change_and_merge_keeps_logits(family):
    model = tiny_model(family)
    adapter = adapter_for(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model, stats = train_lora(model, adapter, random_batches(model), config())
    assert stats.tokens == 300 and stats.steps == 3 and stats.sequences == 10

    # before merging: the base weights are untouched, every LoRA B has moved off zero
    wrapped = {name.removeprefix("base_model.model.") for name, module in
               peft_model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == set(adapter.projection_names(model))
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            assert param.requires_grad
            if "lora_B" in name:
                assert param.abs().max() > 0, name
        else:
            assert not param.requires_grad
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(param, before[key]), name

    ids = random_batches(model, tokens=2 * SEQ, seed=9)[0].input_ids
    unmerged = logits(peft_model, ids)
    merged_model = merge(peft_model)
    merged = logits(merged_model, ids)
    assert ((merged - unmerged).abs().max() / unmerged.abs().max()).item() < 1e-5

    # after merging: exactly the targets' weights differ from the input
    after = merged_model.state_dict()
    assert set(after) == set(before)
    targets = {f"{name}.weight" for name in adapter.projection_names(model)}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == targets


def test_targets_subset_and_slicegpt_shortcuts(sliced):
    model, _ = load_compressed(sliced)
    adapter = adapter_for(model)
    default = lora_targets(model, adapter, config())
    assert len(default) == 3 * len(PROJECTIONS)
    assert not any("shortcut" in name for name in default)
    with_shortcuts = lora_targets(model, adapter, config(include_shortcuts=True))
    extra = sorted(set(with_shortcuts) - set(default))
    assert extra == sorted(f"model.layers.{i}.{s}_shortcut" for i in range(3)
                           for s in ("attn", "mlp"))
    only_mlp = lora_targets(model, adapter, config(targets=("up_proj", "down_proj")))
    assert only_mlp == [f"model.layers.{i}.mlp.{p}" for i in range(3)
                        for p in ("up_proj", "down_proj")]


def test_sliced_shortcuts_train_only_with_the_option(sliced):
    for include, expect_shortcuts in ((False, False), (True, True)):
        model, _ = load_compressed(sliced)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        peft_model, _ = train_lora(model, adapter_for(model), random_batches(model),
                                   config(include_shortcuts=include))
        after = merge(peft_model).state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert any("shortcut" in k for k in changed) == expect_shortcuts
        assert any("q_proj" in k for k in changed)


def test_padded_batch_loss_is_the_mean_over_real_tokens():
    """The remainder row is padded; the model's loss must equal an independent cross-entropy
    over the real tokens only (padding neither predicted nor attended to)."""
    model = tiny_model("llama")
    [batch] = random_batches(model, tokens=SEQ + 20, batch_size=2)
    assert batch.input_ids.shape == (2, SEQ) and batch.tokens == SEQ + 20
    assert batch.attention_mask[1].tolist() == [1] * 20 + [0] * (SEQ - 20)
    with torch.no_grad():
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     labels=batch.labels).loss
        full = model(batch.input_ids[:1]).logits[0]
        short = model(batch.input_ids[1:, :20]).logits[0]
    expected = torch.cat([
        F.cross_entropy(full[:-1], batch.input_ids[0, 1:], reduction="none"),
        F.cross_entropy(short[:-1], batch.input_ids[1, 1:20], reduction="none"),
    ]).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("tokens", "batch_size", "shapes"), [
    (4 * SEQ, 2, [(2, SEQ), (2, SEQ)]),
    (3 * SEQ + 5, 2, [(2, SEQ), (2, SEQ)]),  # the 5-token row is padded into the last batch
    (4 * SEQ + 1, 2, [(2, SEQ), (3, SEQ)]),  # a lone 1-token row joins the previous batch
    (SEQ + 7, 4, [(2, SEQ)]),
    (7, 4, [(1, 7)]),
])
def test_exactly_d_tokens_are_batched(tokens, batch_size, shapes):
    ids = torch.arange(10 * SEQ)
    batches = training_batches(training_rows(ids, tokens, SEQ, "ids"), batch_size, pad_id=0)
    assert [tuple(b.input_ids.shape) for b in batches] == shapes
    assert sum(b.tokens for b in batches) == tokens
    seen = torch.cat([b.labels[b.labels != -100] for b in batches])
    assert torch.equal(seen, ids[:tokens])  # in order, each token once


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trains_under_bf16_autocast_with_float32_weights():
    model = tiny_model("llama")
    peft_model, stats = train_lora(model, adapter_for(model), random_batches(model), config(),
                                   "cuda")
    assert stats.precision == "bf16 autocast" and stats.peak_memory_of == "CUDA allocated"
    merged = merge(peft_model)
    assert all(p.dtype == torch.float32 and p.is_cuda for p in merged.parameters())
    ids = random_batches(model, tokens=SEQ)[0].input_ids.cuda()
    assert torch.isfinite(logits(merged, ids)).all()


def test_a_failed_run_leaves_the_model_without_lora():
    model = tiny_model("qwen2")
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    with pytest.raises(RecoveryError, match="at step 1 of 3"):
        train_lora(model, adapter_for(model), random_batches(model), config())
    assert type(model.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert not any("lora" in name for name, _ in model.named_parameters())
