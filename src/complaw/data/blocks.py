"""Tokenised, fixed-length, non-overlapping blocks of a dataset split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from complaw.data.registry import DATASETS, DatasetSpec, SplitText, canonical_split
from complaw.errors import DataError


@dataclass(frozen=True)
class DataRef:
    """A dataset split named as `name:split`, e.g. `ptb:valid`."""

    dataset: DatasetSpec
    split: str

    @property
    def name(self) -> str:
        return f"{self.dataset.name}:{self.split}"

    @classmethod
    def parse(cls, ref: str, default_split: str = "test") -> DataRef:
        name, _, split = ref.partition(":")
        return cls(DATASETS.get(name), canonical_split(split or default_split))

    def text(self, data_dir: str | Path | None = None) -> str:
        return self.dataset.text(self.split, data_dir)

    def load(self, data_dir: str | Path | None = None) -> SplitText:
        """The split's text and its data variant (file + sha256, or hub id + fingerprint)."""
        return self.dataset.load(self.split, data_dir)

    def require_not_test(self, purpose: str) -> DataRef:
        """Calibration and fine-tuning must never see a test split."""
        if self.split == "test":
            raise DataError(
                f"{self.name} is a test split and cannot be used for {purpose}; "
                f"use {self.dataset.name}:train or {self.dataset.name}:validation"
            )
        return self


def tokenize(text: str, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """The whole text as one id sequence, without special tokens (deterministic)."""
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False, verbose=False)
    return torch.tensor(ids["input_ids"], dtype=torch.long)


def to_blocks(ids: torch.Tensor, seq_len: int, max_tokens: int | None = None) -> torch.Tensor:
    """Cut the first `max_tokens` ids (all if None) into [n, seq_len] non-overlapping blocks;
    a trailing remainder shorter than seq_len is dropped."""
    check_budget(seq_len, None)
    budget = len(ids) if max_tokens is None else min(max_tokens, len(ids))
    n = budget // seq_len
    if n == 0:
        raise DataError(
            f"a token budget of {budget} (text has {len(ids)} tokens, max_tokens={max_tokens}) "
            f"is smaller than one block of seq_len={seq_len}; raise max_tokens or lower seq_len"
        )
    return ids[: n * seq_len].view(n, seq_len)


def check_budget(seq_len: int, max_tokens: int | None) -> None:
    """Fail early on a block length or token budget that cannot make one block."""
    if seq_len <= 0:
        raise DataError(f"seq_len must be a positive number of tokens, got {seq_len}")
    if max_tokens is not None and max_tokens < seq_len:
        raise DataError(
            f"max_tokens={max_tokens} is smaller than one block of seq_len={seq_len}; "
            "raise max_tokens or lower seq_len"
        )


def load_blocks(
    ref: str | DataRef,
    tokenizer: PreTrainedTokenizerBase,
    seq_len: int,
    max_tokens: int | None = None,
    data_dir: str | Path | None = None,
) -> torch.Tensor:
    """Blocks of `ref` (e.g. "wikitext2:test"): LongTensor [n_blocks, seq_len]."""
    check_budget(seq_len, max_tokens)
    ref = DataRef.parse(ref) if isinstance(ref, str) else ref
    return to_blocks(tokenize(ref.text(data_dir), tokenizer), seq_len, max_tokens)
