"""SmolLM2-135M through lm-eval on local task files, and its speed against a pruned copy."""

import os

import pytest

from complaw.compress.base import compress
from complaw.config import SpeedOptions
from complaw.evaluate.extrinsic import evaluate_zero_shot
from complaw.evaluate.speed import measure_speed
from complaw.models import LoadedModel

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("COMPLAW_DATA_DIR"),
                       reason="set COMPLAW_DATA_DIR (../shared/datasets)"),
]


def test_smollm2_beats_chance_on_arc_easy_and_piqa(smollm2):
    result = evaluate_zero_shot(smollm2, ("arc_easy", "piqa"), limit=40)
    arc, arc_loss, piqa, piqa_loss, mean, runtime = result["metrics"]
    # chance is 0.25 (ARC, 4 choices) and 0.5 (PIQA); SmolLM2-135M scores about 0.5 and 0.65
    assert arc["acc_norm"] > 0.35 and piqa["acc_norm"] > 0.55
    assert (arc["n_docs"], piqa["n_docs"]) == (40, 40)
    assert (arc["chance"], piqa["chance"]) == (pytest.approx(0.25, abs=0.03), 0.5)
    # its task loss: about 1.5 bits per byte of the correct answer on both (40 documents)
    for loss, acc in ((arc_loss, arc), (piqa_loss, piqa)):
        assert loss["metric"] == "task_loss" and loss["dataset"] == acc["dataset"]
        assert 0.5 < loss["value"] < 3.0 and 0 < loss["stderr"] < 0.3
        assert acc["task_loss"] == loss["value"]
    assert mean["value"] == pytest.approx((arc["value"] + piqa["value"]) / 2)
    assert runtime["value"] == pytest.approx(result["seconds"])


def test_pruned_copy_is_faster_in_flops(smollm2):
    import copy

    pruned = compress(copy.deepcopy(smollm2.model), "prunenet", 0.5, policy="random").model
    subject = LoadedModel("pruned", smollm2.source, pruned, smollm2.tokenizer,
                          smollm2.adapter, "float32")
    shapes = SpeedOptions(prompt_len=64, new_tokens=8, repeats=2, warmup=1)
    result = measure_speed(subject, shapes, baseline=smollm2)
    assert 1.1 < result["speedup"]["ideal_decode"] < 2.0
    assert result["speedup"]["prefill"] > 0 and result["speedup"]["decode"] > 0
