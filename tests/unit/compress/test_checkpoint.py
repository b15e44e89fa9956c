"""Compressed checkpoints: atomic save, manifest, reload with and without complaw."""

from __future__ import annotations

import json

import pytest
import torch
from tests.conftest import tiny_model, tiny_tokenizer
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

import complaw
from complaw.compress import METHODS, CompressionMethod, compress
from complaw.compress.checkpoint import MANIFEST, Manifest, load_compressed, save_compressed
from complaw.compress.prunenet import PruneNet
from complaw.errors import RecordError

# every registered method that saves a standard HF checkpoint (the default save_model), with
# its default options; and PruneNet's learned policy, kept short
CASES = [(name, {}) for name, method in METHODS.items()
         if type(method).save_model is CompressionMethod.save_model]
CASES.append(("prunenet", {"policy": "learned", "steps": 2, "samples": 2}))


def logits(model, blocks):
    with torch.no_grad():
        return model(blocks).logits


@pytest.mark.parametrize(("method", "options"), CASES)
def test_saved_model_loads_in_plain_transformers(tmp_path, tiny_any, token_blocks, method, options):
    result = compress(tiny_any, method, 0.3, calibration=token_blocks, seed=4, **options)
    expected = logits(result.model, token_blocks)
    folder = save_compressed(result, tmp_path / "ckpt", tokenizer=tiny_tokenizer(),
                             extra={"note": "unit"})

    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    torch.testing.assert_close(logits(plain, token_blocks), expected)
    model, manifest = load_compressed(folder)
    torch.testing.assert_close(logits(model, token_blocks), expected)
    reloaded = PreTrainedTokenizerFast.from_pretrained(folder)  # the class: no model_type lookup
    assert reloaded("w3 w4")["input_ids"] == tiny_tokenizer()("w3 w4")["input_ids"] != []

    on_disk = json.loads((folder / MANIFEST).read_text())
    assert on_disk == manifest.to_dict() and Manifest.from_dict(on_disk) == manifest
    assert on_disk["format"] == "complaw-compressed" and on_disk["format_version"] == 1
    assert (manifest.method, manifest.ratio, manifest.seed) == (method, 0.3, 4)
    assert manifest.options == options and manifest.recovery is None
    assert manifest.params_before == result.params_before
    assert manifest.params_after == result.params_after
    assert manifest.params_after["total"] == sum(p.numel() for p in plain.parameters())
    assert manifest.achieved["blocks"] == pytest.approx(result.achieved["blocks"])
    assert manifest.complaw_version == complaw.__version__
    assert manifest.extra == {"note": "unit"}


def saved(tmp_path, name="ckpt"):
    result = compress(tiny_model("llama"), "prunenet", 0.5, policy="random")
    return result, save_compressed(result, tmp_path / name)


def test_existing_non_empty_target_is_refused_unless_overwrite(tmp_path):
    result, folder = saved(tmp_path)
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(RecordError, match="not empty.*overwrite"):
        save_compressed(result, folder)
    assert (folder / "keep.txt").read_text() == "mine"
    save_compressed(result, folder, overwrite=True)
    assert not (folder / "keep.txt").exists()
    assert (folder / MANIFEST).is_file()


def test_an_empty_existing_target_is_filled(tmp_path):
    result = compress(tiny_model("llama"), "prunenet", 0.5)
    (tmp_path / "empty").mkdir()
    save_compressed(result, tmp_path / "empty")
    assert load_compressed(tmp_path / "empty")[1].method == "prunenet"


def test_failing_save_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    result = compress(tiny_model("llama"), "prunenet", 0.5)

    def half_write(self, model, folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(PruneNet, "save_model", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        save_compressed(result, tmp_path / "out" / "ckpt")
    assert list((tmp_path / "out").iterdir()) == []


def test_failing_overwrite_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    result, folder = saved(tmp_path)
    before = sorted(p.name for p in folder.iterdir())
    monkeypatch.setattr(PruneNet, "save_model", lambda self, model, folder: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save_compressed(result, folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_loading_a_folder_without_manifest_is_a_clear_error(tmp_path):
    tiny_model("llama").save_pretrained(tmp_path / "plain")
    with pytest.raises(RecordError, match="not a complaw compressed checkpoint"):
        load_compressed(tmp_path / "plain")


def test_loading_an_unknown_format_is_a_clear_error(tmp_path):
    _, folder = saved(tmp_path)
    (folder / MANIFEST).write_text(json.dumps({"format": "other", "format_version": 7}))
    with pytest.raises(RecordError, match="'other' version 7"):
        load_compressed(folder)
    good = {"format": "complaw-compressed", "format_version": 1}
    (folder / MANIFEST).write_text(json.dumps({**good, "method": "prunenet", "ratios": 0.3}))
    with pytest.raises(RecordError, match="unknown manifest key.*ratios.*valid manifest keys"):
        load_compressed(folder)
