"""Recovery fine-tuning: LoRA (peft) with a token budget D on any model or compressed checkpoint,
merged into the weights and saved as a checkpoint that chains base → compression → recovery."""

from complaw.config import LoraOptions, Recovery
from complaw.projections import PROJECTIONS
from complaw.recover.batches import Batch, training_batches, training_rows
from complaw.recover.config import RecoveryError
from complaw.recover.run import RecoveryResult, recover
from complaw.recover.train import TrainStats, attach_lora, lora_targets, merge, train_lora

__all__ = [
    "PROJECTIONS", "Batch", "LoraOptions", "Recovery", "RecoveryError", "RecoveryResult",
    "TrainStats", "attach_lora", "lora_targets", "merge", "recover", "train_lora",
    "training_batches", "training_rows",
]
