"""The `speed` evaluation stage: prefill and decode tokens/s and peak memory
(complaw.study.pipeline.run_speed). A compressed or recovered model is timed interleaved with
its base model in one process, so that its record keeps the measured speedup beside the
FLOP-proportional ideal; a base model's record keeps its own throughput. The study's `Speed`
`options` are complaw.evaluate.speed.SpeedConfig's fields, resolved with their defaults.
Recovered checkpoints are not timed: a merged LoRA changes no shape, so their speed is their
compressed input's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from complaw.study.stages import Resources, Stage, StageContext, register


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    from complaw.evaluate.speed import SpeedConfig

    return SpeedConfig.from_dict(dict(options)).to_dict()


def run(ctx: StageContext) -> dict[str, Any]:
    from complaw.evaluate.speed import SpeedConfig
    from complaw.study.pipeline import run_speed

    base = ctx.chain["model"]
    baseline = None if ctx.source == base else base
    return run_speed(ctx.chain, None, ctx.device, location=ctx.source,
                     baseline_location=baseline, settings=SpeedConfig.from_dict(
                         dict(ctx.config.options)))


register(Stage(
    name="speed", slot="eval", produces="record", inputs=("model", "compress"),
    run=run, resources=Resources(cpus=1, gpus=1), resolve_options=resolve_options,
))
