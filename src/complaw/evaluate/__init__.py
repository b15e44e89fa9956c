"""Evaluation of (compressed) models: intrinsic loss, extrinsic accuracy, speed."""

from complaw.evaluate.extrinsic import chosen_metric, evaluate_zero_shot
from complaw.evaluate.intrinsic import IntrinsicResult, evaluate_loss
from complaw.evaluate.speed import flops_per_token, measure_speed

__all__ = ["IntrinsicResult", "chosen_metric",
           "evaluate_loss", "evaluate_zero_shot", "flops_per_token", "measure_speed"]
