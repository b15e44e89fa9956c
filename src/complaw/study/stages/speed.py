"""The `speed` evaluation stage: prefill and decode tokens/s and peak memory
(complaw.experiment.pipeline.run_speed). A compressed or recovered model is timed interleaved with
its base model in one process, so that its record keeps the measured speedup beside the
FLOP-proportional ideal; a base model's record keeps its own throughput. The study's `Speed`
`options` are complaw.config.SpeedOptions. Recovered checkpoints are not timed: a merged LoRA
changes no shape, so their speed is their compressed input's."""

from __future__ import annotations

from complaw.experiment.records import Record
from complaw.study.stages.base import Resources, Stage, StageContext, register


def run(ctx: StageContext) -> Record:
    from complaw.experiment.pipeline import run_speed

    base = ctx.experiment.model
    baseline = None if ctx.source == base else base
    return run_speed(ctx.experiment, None, ctx.device, location=ctx.source,
                     baseline_location=baseline)


register(Stage(
    name="speed", slot="eval", produces="record", inputs=("model", "compress"),
    run=run, resources=Resources(cpus=1, gpus=1),
))
