"""The `intrinsic` evaluation stage: test cross-entropy
(complaw.experiment.pipeline.run_intrinsic)."""

from __future__ import annotations

from complaw.experiment.records import Record
from complaw.study.stages.base import Resources, Stage, StageContext, register


def run(ctx: StageContext) -> Record:
    from complaw.experiment.pipeline import run_intrinsic

    return run_intrinsic(ctx.experiment, None, ctx.device, ctx.data_dir, location=ctx.source)


register(Stage(
    name="intrinsic", slot="eval", produces="record", inputs=("model", "compress", "recover"),
    run=run, resources=Resources(cpus=1, gpus=1),
))
