"""The `extrinsic` evaluation stage: zero-shot accuracy through lm-eval
(complaw.study.pipeline.run_extrinsic). The study's `Extrinsic` gives the tasks and the limit;
its `options` are complaw.evaluate.extrinsic.ExtrinsicConfig's other fields (batch_size,
num_fewshot), resolved with their defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from complaw.errors import ConfigError
from complaw.study.stages import Resources, Stage, StageContext, register

_OWN = ("tasks", "limit")  # set by the spec's extrinsic keys, not options


def settings(tasks: tuple[str, ...], limit: int | None, options: Mapping[str, Any]):
    from complaw.evaluate.extrinsic import ExtrinsicConfig

    clash = sorted(set(options) & set(_OWN))
    if clash:
        raise ConfigError(f"extrinsic options {', '.join(clash)} are spec keys of "
                          "evaluations.extrinsic; remove them from options")
    return ExtrinsicConfig.from_dict({**options, "tasks": list(tasks), "limit": limit})


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    resolved = settings(("arc_easy",), None, options).to_dict()
    return {k: v for k, v in resolved.items() if k not in _OWN}


def run(ctx: StageContext) -> dict[str, Any]:
    from complaw.study.pipeline import run_extrinsic

    ev = ctx.config
    return run_extrinsic(ctx.chain, None, ctx.device, ctx.data_dir, location=ctx.source,
                         settings=settings(ev.tasks, ev.limit, ev.options))


register(Stage(
    name="extrinsic", slot="eval", produces="record", inputs=("model", "compress", "recover"),
    run=run, resources=Resources(cpus=1, gpus=1), resolve_options=resolve_options,
))
