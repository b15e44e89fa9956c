"""The `extrinsic` and `task_loss` evaluation stages: zero-shot accuracy and task loss through
lm-eval (complaw.experiment.pipeline.run_extrinsic). The study's `Extrinsic` (or `TaskLoss`)
gives the tasks, the limit and the lm-eval options (complaw.config.ExtrinsicOptions:
batch_size, num_fewshot)."""

from __future__ import annotations

from complaw.experiment.records import Record
from complaw.study.stages.base import Resources, Stage, StageContext, register


def run(ctx: StageContext) -> Record:
    from complaw.experiment.pipeline import run_extrinsic

    return run_extrinsic(ctx.experiment, None, ctx.device, ctx.data_dir, location=ctx.source)


for name in ("extrinsic", "task_loss"):  # task_loss: the gold continuations only
    register(Stage(
        name=name, slot="eval", produces="record", inputs=("model", "compress", "recover"),
        run=run, resources=Resources(cpus=1, gpus=1),
    ))
