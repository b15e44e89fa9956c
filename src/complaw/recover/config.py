"""What a recovery fine-tuning run does: one frozen, validated configuration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import ClassVar

from transformers import SchedulerType

from complaw.data import DataRef
from complaw.errors import ComplawError, ConfigError
from complaw.models.adapters import ArchitectureAdapter
from complaw.settings import Settings

PROJECTIONS = ArchitectureAdapter.PROJECTIONS


class RecoveryError(ComplawError):
    """Recovery fine-tuning cannot be run or went wrong (e.g. a non-finite loss)."""


@dataclass(frozen=True)
class RecoveryConfig(Settings):
    """LoRA recovery fine-tuning with a token budget D (see docs/recover.md).

    Exactly one of `tokens` and `samples` sets the budget (`samples` N means N · seq_len
    tokens). `resolved()` gives the canonical form that runs and manifests record.
    """

    what: ClassVar[str] = "recovery option(s)"
    data: str = field(default="alpaca:train", metadata={
        "help": "Training data NAME[:SPLIT] (default split: train); test splits are refused."})
    tokens: int | None = field(default=None, metadata={
        "help": "Training budget D in tokens (0 = no recovery: the input is written unchanged)."})
    samples: int | None = field(default=None, metadata={
        "help": "Training budget in sequences of seq_len tokens (instead of tokens)."})
    seq_len: int = field(default=1024, metadata={"help": "Tokens per packed training block."})
    rank: int = field(default=16, metadata={"help": "LoRA rank r."})
    alpha: float = field(default=32.0, metadata={"help": "LoRA scaling alpha (scale alpha/r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lr: float = field(default=2e-4, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup: float = field(default=0.03, metadata={
        "help": "Warm-up as a fraction of the steps (rounded to whole steps)."})
    scheduler: str = field(default="linear", metadata={
        "help": "Learning-rate decay after warm-up: a transformers scheduler name "
                "(linear, cosine, constant_with_warmup, ...)."})
    batch_size: int = field(default=4, metadata={"help": "Blocks per optimizer step."})
    seed: int = field(default=0, metadata={"help": "Seed of the LoRA init and dropout."})
    targets: tuple[str, ...] = field(default=PROJECTIONS, metadata={
        "help": "Adapter roles LoRA adapts (default: every attention and MLP projection)."})
    include_shortcuts: bool = field(default=False, metadata={
        "help": "Also adapt the other linear maps inside decoder layers (SliceGPT's shortcut "
                "matrices)."})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass (less memory, slower)."})
    log_every: int = field(default=10, metadata={
        "help": "Record the mean train loss every this many steps."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if (self.tokens is None) == (self.samples is None):
            raise ConfigError("give exactly one budget: tokens (--tokens D) or samples "
                              f"(--samples N); got tokens={self.tokens}, samples={self.samples}")
        for name in ("tokens", "samples"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name}={value} is negative; the budget D is >= 0 "
                                  "(0 = no recovery)")
        if self.budget == 1:
            raise ConfigError("a budget of 1 token leaves no token to predict; use 0 or >= 2")
        for name in ("rank", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.seq_len < 2:
            raise ConfigError(f"seq_len={self.seq_len} must be >= 2 (a block predicts seq_len-1)")
        if self.lr <= 0 or self.alpha <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr={self.lr} and alpha={self.alpha} must be > 0, weight_decay="
                              f"{self.weight_decay} >= 0")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.warmup <= 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) and warmup="
                              f"{self.warmup} (a fraction of the steps) in [0, 1]")
        if self.scheduler not in {s.value for s in SchedulerType}:
            known = ", ".join(s.value for s in SchedulerType)
            raise ConfigError(f"unknown scheduler {self.scheduler!r}; known: {known}")
        unknown = sorted(set(self.targets) - set(PROJECTIONS))
        if unknown or not self.targets:
            raise ConfigError(f"LoRA targets {list(self.targets)} must be a non-empty subset of "
                              f"{', '.join(PROJECTIONS)}")

    @property
    def budget(self) -> int:
        """D in tokens."""
        return self.tokens if self.tokens is not None else self.samples * self.seq_len

    @property
    def ref(self) -> DataRef:
        """The training split (unknown datasets and test splits fail here)."""
        return DataRef.parse(self.data, default_split="train").require_not_test(
            "recovery fine-tuning")

    def resolved(self) -> RecoveryConfig:
        """The canonical form that runs and manifests record: data as `name:split` and the
        budget in tokens (D = samples · seq_len when given in samples)."""
        return dataclasses.replace(self, data=self.ref.name, tokens=self.budget, samples=None)

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field `name` (the CLI's option help)."""
        return next(f.metadata["help"] for f in fields(cls) if f.name == name)
