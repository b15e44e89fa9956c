"""The `recover` stage: compressed checkpoint -> recovered checkpoint (complaw.recover).

The study's `Recovery` (dataset, samples of seq_len tokens, seed) sets the budget D; its
`options` are complaw.config.LoraOptions (rank, alpha, lr, ...), resolved with their defaults so
that they are part of the checkpoint's identity.
"""

from __future__ import annotations

from complaw.study.stages.base import Resources, Stage, StageContext, register


def run(ctx: StageContext) -> None:
    from complaw.recover import recover

    recover(ctx.source, ctx.config, ctx.output, device=ctx.device, data_dir=ctx.data_dir)


register(Stage(
    name="recover", slot="recovery", produces="checkpoint", inputs=("compress",), run=run,
    resources=Resources(cpus=1, gpus=1),
))
