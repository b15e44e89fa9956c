"""The `compress` stage: base model -> compressed checkpoint (experiment.pipeline.run_compress)."""

from __future__ import annotations

from pathlib import Path

from complaw.config import chain_id, config_id
from complaw.errors import RecordError
from complaw.study.stages.base import Resources, Stage, StageContext, check_checkpoint, register


def run(ctx: StageContext) -> None:
    from complaw.experiment.pipeline import run_compress

    run_compress(ctx.source, ctx.config, ctx.output, dtype=ctx.dtype, device=ctx.device,
                 data_dir=ctx.data_dir)


def check(folder: Path) -> None:
    """A compressed checkpoint is whole and is the one its folder name (content id, or its
    earlier id: its whole config hashed) says."""
    from complaw.compress.checkpoint import read_manifest
    from complaw.config import Compression

    check_checkpoint(folder)
    config = read_manifest(folder).extra.get("config") or {}
    try:
        ident = chain_id(config["model"], config["dtype"],
                         Compression.from_dict(config["compression"]))
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{folder}: its manifest has no study config ({exc})") from None
    if folder.name not in (ident, config_id(config)):
        raise RecordError(f"{folder}: its manifest describes checkpoint {ident}, not "
                          f"{folder.name}")


register(Stage(
    name="compress", slot="compression", produces="checkpoint", inputs=("model",), run=run,
    resources=Resources(cpus=1, gpus=1), check=check,
))
