"""The error of recovery fine-tuning. Its config is complaw.config.Recovery (data, budget,
seed) with complaw.config.LoraOptions as its options."""

from __future__ import annotations

from complaw.errors import ComplawError


class RecoveryError(ComplawError):
    """Recovery fine-tuning cannot be run or went wrong (e.g. a non-finite loss)."""
