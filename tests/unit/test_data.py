import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from complaw.data import DATASETS, DataRef, load_blocks, to_blocks
from complaw.data.registry import ALPACA_HELD_OUT, alpaca_split
from complaw.errors import DataError
from tests.conftest import tiny_tokenizer


def test_reads_split_from_data_dir(tiny_data_dir):
    text = DATASETS.get("ptb").text("valid")
    assert text == (tiny_data_dir / "ptb" / "valid.txt").read_text()
    assert DataRef.parse("ptb:val").split == "validation"
    assert DataRef.parse("ptb").split == "test"


def test_missing_file_names_where_it_looked_and_the_fix(tiny_data_dir):
    with pytest.raises(DataError) as err:
        DATASETS.get("wikitext2").text("test")
    message = str(err.value)
    assert str(tiny_data_dir / "wikitext2" / "test.txt") in message
    assert "COMPLAW_DATA_DIR" in message and "hub is off" in message


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset 'c4'; known: alpaca, ptb, wikitext2"):
        DataRef.parse("c4:test")
    with pytest.raises(DataError, match="unknown split 'holdout'"):
        DataRef.parse("ptb:holdout")


def test_test_split_is_refused_for_calibration():
    with pytest.raises(DataError, match="ptb:test is a test split.*calibration"):
        DataRef.parse("ptb:test").require_not_test("calibration")
    assert DataRef.parse("ptb:valid").require_not_test("calibration").split == "validation"


def test_blocks_are_the_first_tokens_without_overlap():
    ids = torch.arange(103)
    blocks = to_blocks(ids, 10)
    assert blocks.shape == (10, 10)
    assert torch.equal(blocks.flatten(), ids[:100])
    assert to_blocks(ids, 10, max_tokens=35).shape == (3, 10)


@pytest.mark.parametrize("seq_len,max_tokens,match", [
    (0, None, "seq_len must be a positive"),
    (-5, None, "seq_len must be a positive"),
    (64, 32, "max_tokens=32 is smaller than one block"),
])
def test_bad_budgets(tiny_data_dir, seq_len, max_tokens, match):
    with pytest.raises(DataError, match=match):
        load_blocks("ptb:valid", tiny_tokenizer(), seq_len, max_tokens)


def test_text_shorter_than_one_block():
    with pytest.raises(DataError, match="smaller than one block"):
        to_blocks(torch.arange(5), 10)


def test_load_blocks_tokenises_the_split(tiny_data_dir):
    tok = tiny_tokenizer()
    blocks = load_blocks("ptb:valid", tok, 50, max_tokens=1000)
    assert blocks.shape == (20, 50)
    words = (tiny_data_dir / "ptb" / "valid.txt").read_text().split()[:1000]
    assert blocks.flatten().tolist() == tok.convert_tokens_to_ids(words)


def test_alpaca_held_out_split_is_fixed_disjoint_and_complete(tmp_path, monkeypatch):
    records = [{"instruction": f"task {i}", "input": "x" if i % 2 else "", "output": f"o{i}"}
               for i in range(4000)]
    (tmp_path / "alpaca").mkdir()
    (tmp_path / "alpaca" / "alpaca_data.json").write_text(json.dumps(records))
    monkeypatch.setenv("COMPLAW_DATA_DIR", str(tmp_path))
    parts = {s: DATASETS.get("alpaca").text(s) for s in ("train", "validation", "test")}
    seen = {s: {int(line.split()[1]) for line in t.splitlines() if line.startswith("task ")}
            for s, t in parts.items()}
    assert len(seen["test"]) == ALPACA_HELD_OUT["test"]
    assert len(seen["validation"]) == ALPACA_HELD_OUT["validation"]
    assert seen["train"] | seen["validation"] | seen["test"] == set(range(4000))
    assert not (seen["train"] & seen["test"]) and not (seen["validation"] & seen["test"])
    assert alpaca_split(records, "test") == parts["test"]  # deterministic
    assert "### Input:\nx" in parts["train"] and "### Response:\no" in parts["train"]


def test_canonical_file_names_win_and_name_their_variant(tmp_path, monkeypatch):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.train.txt").write_text("canonical\r\nline two\r\n")
    (tmp_path / "ptb" / "train.txt").write_text("short name\n")
    monkeypatch.setenv("COMPLAW_DATA_DIR", str(tmp_path))
    split = DataRef.parse("ptb:train").load()
    assert split.text == "canonical\nline two\n"  # CRLF made plain
    raw = (tmp_path / "ptb" / "ptb.train.txt").read_bytes()
    assert split.variant == {"source": "file", "file": "ptb/ptb.train.txt",
                             "sha256": hashlib.sha256(raw).hexdigest()}


def test_alpaca_sample_and_full_file_are_different_variants(tmp_path, monkeypatch):
    records = [{"instruction": f"task {i}", "input": "", "output": "o"} for i in range(3500)]
    (tmp_path / "alpaca").mkdir()
    (tmp_path / "alpaca" / "alpaca_5000.json").write_text(json.dumps(records))
    monkeypatch.setenv("COMPLAW_DATA_DIR", str(tmp_path))
    sample = DataRef.parse("alpaca:train").load()
    assert sample.variant["file"] == "alpaca/alpaca_5000.json"
    (tmp_path / "alpaca" / "alpaca_data.json").write_text(json.dumps(records[:3200]))
    full = DataRef.parse("alpaca:train").load()
    assert full.variant["file"] == "alpaca/alpaca_data.json"
    assert full.variant["sha256"] != sample.variant["sha256"]


STAGED = {  # ref -> the file the shared data folder must resolve it to (see its MANIFEST.md)
    "ptb:train": "ptb/ptb.train.txt", "ptb:validation": "ptb/ptb.valid.txt",
    "ptb:test": "ptb/ptb.test.txt", "wikitext2:train": "wikitext2/wiki.train.tokens",
    "wikitext2:validation": "wikitext2/wiki.valid.tokens", "wikitext2:test": "wikitext2/test.txt",
    "alpaca:train": "alpaca/alpaca_5000.json", "alpaca:test": "alpaca/alpaca_5000.json",
}


@pytest.mark.parametrize("ref", sorted(STAGED))
def test_staged_data_folder_is_read_under_its_own_names(ref):
    root = os.environ.get("COMPLAW_DATA_DIR")
    if not root or not (Path(root) / "SHA256SUMS").is_file():
        pytest.skip("COMPLAW_DATA_DIR is not the staged data folder (CI sets it)")
    sums = dict(reversed(line.split(maxsplit=1)) for line in
                (Path(root) / "SHA256SUMS").read_text().splitlines() if line.strip())
    sums = {name.lstrip("*./").strip(): digest for name, digest in sums.items()}
    split = DataRef.parse(ref).load()
    assert split.variant["file"] == STAGED[ref]
    assert split.variant["sha256"] == sums[STAGED[ref]]
    assert "\r" not in split.text[:100_000] and len(split.text) > 100_000
