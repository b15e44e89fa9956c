"""The `recover` stage: compressed checkpoint -> recovered checkpoint (complaw.recover).

The study's `Recovery` (dataset, samples of seq_len tokens, seed) sets the budget D; its
`options` are complaw.recover.RecoveryConfig's LoRA and optimiser fields (rank, alpha, lr, ...),
resolved with their defaults so that they are part of the checkpoint's identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from complaw.errors import ConfigError
from complaw.study.stages import Resources, Stage, StageContext, register

# RecoveryConfig fields the study's Recovery sets itself (not options)
_OWN = ("data", "tokens", "samples", "seq_len", "seed")


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    from complaw.recover import RecoveryConfig

    clash = sorted(set(options) & set(_OWN))
    if clash:
        raise ConfigError(f"recovery options {', '.join(clash)} are set by the spec's recovery "
                          "keys (datasets, samples, seq_len, seeds); remove them from options")
    resolved = RecoveryConfig.from_dict({**options, "samples": 1}).to_dict()
    return {k: v for k, v in resolved.items() if k not in _OWN}


def run(ctx: StageContext) -> None:
    from complaw.recover import RecoveryConfig, recover

    rec = ctx.config
    config = RecoveryConfig.from_dict({**rec.options, "data": rec.dataset, "samples": rec.samples,
                                       "seq_len": rec.seq_len, "seed": rec.seed})
    recover(ctx.source, config, ctx.output, device=ctx.device, data_dir=ctx.data_dir)


register(Stage(
    name="recover", slot="recovery", produces="checkpoint", inputs=("compress",), run=run,
    resources=Resources(cpus=1, gpus=1), resolve_options=resolve_options,
))
