"""`recover` end to end on tiny checkpoints: saving, reloading, the manifest chain, bad input."""

from __future__ import annotations

import json
import os

import pytest
import torch
from tests.conftest import tiny_model
from tests.unit.recover.recover_fixtures import SEQ, checkpoint, config, weights
from transformers import AutoModelForCausalLM

from complaw.compress.checkpoint import MANIFEST, load_compressed
from complaw.config import Recovery
from complaw.errors import ConfigError, DataError, ModelError, RecordError
from complaw.models import adapter_for
from complaw.projections import PROJECTIONS
from complaw.recover import (
    RecoveryError,
    recover,
    train_lora,
    training_batches,
    training_rows,
)

IDS = torch.arange(2 * SEQ).view(2, SEQ) % 200


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def manifest(folder):
    return json.loads((folder / MANIFEST).read_text())


@pytest.mark.parametrize("kind", ["plain", "pruned", "sliced"])
def test_recovered_checkpoint_reloads_with_equal_logits(kind, tmp_path, tiny_data_dir):
    method = {"plain": None, "pruned": "prunenet", "sliced": "slicegpt"}[kind]
    source = checkpoint(tmp_path, "llama", method, kind)
    before = weights(source)
    result = recover(source, config(), tmp_path / "out", device="cpu")
    reloaded, typed = load_compressed(result.folder)
    torch.testing.assert_close(logits(reloaded), logits(result.model), rtol=0, atol=0)
    written = manifest(result.folder)
    assert typed == result.manifest and typed.to_dict() == written
    assert weights(source).keys() == before.keys()  # the input is left as it was
    if method != "slicegpt":  # prunenet and plain outputs need no complaw to load
        plain = AutoModelForCausalLM.from_pretrained(result.folder).eval()
        torch.testing.assert_close(logits(plain), logits(result.model), rtol=0, atol=0)

    rec = written["recovery"]
    assert written["method"] == method
    assert (rec["dataset"], rec["tokens"], rec["sequences"], rec["steps"]) == \
        ("ptb:train", 300, 10, 3)
    assert (rec["rank"], rec["alpha"], rec["seed"], rec["seq_len"]) == (16, 32.0, 0, SEQ)
    assert rec["data_variant"]["source"] == "file" and len(rec["data_variant"]["sha256"]) == 64
    stats = rec["stats"]
    assert stats["final_loss"] > 0 and stats["losses"][-1]["tokens"] == 300
    assert stats["seconds"] > 0 and stats["peak_memory_mib"] > 0
    if method is None:
        assert written["extra"] == {"model": str(source)}
    else:  # the chain keeps the compression entry as it was
        compressed = manifest(source)
        assert {k: written[k] for k in compressed} == compressed


def test_zero_budget_writes_the_input_bit_identical(tmp_path, tiny_data_dir, pruned):
    for source in (checkpoint(tmp_path, "qwen2", None, "plain"), pruned):
        out = tmp_path / f"{source.name}-d0"
        result = recover(source, config(tokens=0), out, device="cpu")
        old, new = weights(source), weights(out)
        assert old.keys() == new.keys()
        assert all(torch.equal(old[k], new[k]) for k in old)
        rec = result.recovery
        assert (rec["tokens"], rec["steps"], rec["sequences"]) == (0, 0, 0)


def test_same_seed_same_data_gives_identical_weights(tmp_path, tiny_data_dir):
    source = checkpoint(tmp_path, "llama", None, "plain")
    runs = [recover(source, config(seed=s), tmp_path / f"run{i}", device="cpu")
            for i, s in enumerate((7, 7, 8))]
    a, b, c = (weights(r.folder) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_samples_budget_is_sequences_of_seq_len(tmp_path, tiny_data_dir):
    source = checkpoint(tmp_path, "llama", None, "plain")
    result = recover(source, config(tokens=None, samples=5), tmp_path / "out", device="cpu")
    rec = result.recovery
    assert (rec["tokens"], rec["samples"], rec["sequences"]) == (5 * SEQ, 5, 5)


def test_gradient_checkpointing_gives_the_same_training():
    ids = torch.arange(300) % 200
    batches = training_batches(training_rows(ids, 300, SEQ, "ids"), 4, pad_id=0)
    results = []
    for on in (False, True):
        model = tiny_model("llama")
        peft_model, _ = train_lora(model, adapter_for(model), batches,
                                   config(grad_checkpointing=on, dropout=0.0))
        results.append(peft_model.merge_and_unload().state_dict())
    plain, checkpointed = results
    for k in plain:
        torch.testing.assert_close(checkpointed[k], plain[k], rtol=1e-5, atol=1e-6)


# --- bad input: a clear error, nothing written ------------------------------------------------

@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"tokens": -5}, ConfigError, "negative"),
    ({"tokens": 10, "samples": 2}, ConfigError, "give one budget"),
    ({"rank": 0}, ConfigError, "rank=0"),
    ({"targets": ("q_proj", "w_in")}, ConfigError, "subset of"),
    ({"scheduler": "zigzag"}, ConfigError, "unknown scheduler"),
])
def test_bad_config_values(changes, error, words):
    with pytest.raises(error, match=words):
        config(**changes)


@pytest.mark.parametrize(("changes", "words"), [
    ({"dataset": "ptb:test"}, "test split"),
    ({"dataset": "imagenet:train"}, "unknown dataset"),
    ({"tokens": 50_000}, "has 3,000 tokens"),
])
def test_bad_data_fails_before_writing(changes, words, tmp_path, tiny_data_dir):
    source = checkpoint(tmp_path, "llama", None, "plain")
    with pytest.raises(DataError, match=words):
        recover(source, config(**changes), tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


def test_bad_model_and_output_locations(tmp_path, tiny_data_dir):
    source = checkpoint(tmp_path, "llama", None, "plain")
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        recover(empty, config(), tmp_path / "out", device="cpu")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordError, match="is a file"):
        recover(source, config(), tmp_path / "file", device="cpu")
    with pytest.raises(RecordError, match="is the input"):
        recover(source, config(), source, device="cpu", overwrite=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path, tiny_data_dir):
    source = checkpoint(tmp_path, "llama", None, "plain")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(RecordError, match="permission denied"):
            recover(source, config(), locked / "out", device="cpu")
    finally:
        locked.chmod(0o700)


def test_nan_loss_stops_naming_the_step_and_saves_nothing(tmp_path, tiny_data_dir):
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    folder = checkpoint(tmp_path, "llama", None, "plain")
    model.save_pretrained(folder)
    with pytest.raises(RecoveryError, match="at step 1 of 3"):
        recover(folder, config(), tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))  # no temp folder left behind


def test_a_recovered_checkpoint_is_not_recovered_again(tmp_path, tiny_data_dir):
    source = checkpoint(tmp_path, "llama", None, "plain")
    once = recover(source, config(tokens=0), tmp_path / "once", device="cpu")
    with pytest.raises(RecoveryError, match="already recovered"):
        recover(once.folder, config(), tmp_path / "twice", device="cpu")


def test_config_dict_roundtrip_and_unknown_keys():
    cfg = config(targets=("q_proj", "v_proj"))
    assert Recovery.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown recovery option.*epochs"):
        config(epochs=2)
    with pytest.raises(ConfigError, match="unknown field.*data for Recovery"):
        Recovery.from_dict({**cfg.to_dict(), "data": "ptb"})
    resolved = Recovery("ptb", samples=3, seq_len=SEQ).resolve()
    assert (resolved.dataset, resolved.tokens, resolved.samples) == ("ptb:train", 3 * SEQ, 3)
    assert resolved.options["rank"] == 16 and resolved.lora.targets == PROJECTIONS
