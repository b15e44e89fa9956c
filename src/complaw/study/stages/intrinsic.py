"""The `intrinsic` evaluation stage: test cross-entropy (complaw.study.pipeline.run_intrinsic)."""

from __future__ import annotations

from typing import Any

from complaw.study.stages import Resources, Stage, StageContext, register


def run(ctx: StageContext) -> dict[str, Any]:
    from complaw.study.pipeline import run_intrinsic

    return run_intrinsic(ctx.chain, None, ctx.device, ctx.data_dir, location=ctx.source)


register(Stage(
    name="intrinsic", slot="eval", produces="record", inputs=("model", "compress", "recover"),
    run=run, resources=Resources(cpus=1, gpus=1),
))
