"""Exactly D training tokens, packed into blocks and batches for the causal-LM loss.

The first D tokens of the split's token stream are cut into rows of `seq_len`; when D is not a
multiple of seq_len the last row is shorter (D mod seq_len tokens). Rows are grouped into
batches of `batch_size` in order. A batch mixing a short row with full ones right-pads it:
padding has attention mask 0 and label -100, so it is neither attended to nor predicted. A
one-token last row predicts nothing; alone in its batch it would make an empty loss, so it joins
the previous batch. Labels are the input ids: the model shifts them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from complaw.errors import DataError

IGNORE = -100  # the label transformers' loss ignores


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [rows, length]
    labels: torch.Tensor  # input_ids, with IGNORE on padding
    attention_mask: torch.Tensor | None  # None when no row is padded

    @property
    def tokens(self) -> int:
        """Real (unpadded) input tokens."""
        return int((self.labels != IGNORE).sum())

    def to(self, device: torch.device | str) -> Batch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return Batch(self.input_ids.to(device), self.labels.to(device), mask)


def training_rows(ids: torch.Tensor, tokens: int, seq_len: int, source: str) -> list[torch.Tensor]:
    """The first `tokens` ids cut into rows of `seq_len` (the last may be shorter)."""
    if tokens > len(ids):
        raise DataError(
            f"a training budget of {tokens:,} tokens is larger than {source}, which has "
            f"{len(ids):,} tokens with this tokenizer; lower --tokens/--samples or use a larger "
            "split"
        )
    return list(ids[:tokens].split(seq_len)) if tokens else []


def collate(rows: list[torch.Tensor], pad_id: int) -> Batch:
    """Stack `rows`, right-padding shorter ones (mask 0, label IGNORE)."""
    length = max(len(r) for r in rows)
    if all(len(r) == length for r in rows):
        ids = torch.stack(rows)
        return Batch(ids, ids, None)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        labels[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return Batch(ids, labels, mask)


def training_batches(rows: list[torch.Tensor], batch_size: int, pad_id: int) -> list[Batch]:
    """`rows` in order, `batch_size` at a time (see the module docstring)."""
    groups = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    if len(groups) > 1 and len(groups[-1]) == 1 and len(groups[-1][0]) == 1:
        groups[-2].extend(groups.pop())
    return [collate(group, pad_id) for group in groups]
