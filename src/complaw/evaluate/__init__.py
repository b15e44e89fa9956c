"""Evaluation of (compressed) models: intrinsic loss, extrinsic accuracy, speed."""

from complaw.evaluate.intrinsic import IntrinsicResult, evaluate_loss

__all__ = ["IntrinsicResult", "evaluate_loss"]
