"""The stage registry: `Stage` (what a stage declares), `StageContext` (what its run gets), the
registry `STAGES` and the default check of a checkpoint folder (see the package docstring)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from complaw.config import Experiment, StageConfig
from complaw.errors import ConfigError, RecordError
from complaw.experiment.records import Record
from complaw.registry import Registry

Slot = Literal["compression", "recovery", "eval"]


@dataclass(frozen=True)
class Resources:
    """What one execution needs: CPUs always, GPUs when the study runs on a GPU device."""

    cpus: float = 1
    gpus: float = 1

    def ray_options(self, device: str) -> dict[str, float]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus if device != "cpu" else 0}


@dataclass(frozen=True)
class StageContext:
    """What a stage's run function gets."""

    config: StageConfig  # the stage's own config (resolved)
    experiment: Experiment | None  # record stages: the experiment whose record they make
    source: str  # what to load: the base model, or the folder of the checkpoint it reads
    output: Path  # checkpoint stages: the folder to create (atomically); records: the file
    device: str
    dtype: str
    data_dir: str | None


@dataclass(frozen=True)
class Stage:
    """One kind of stage execution (see the module docstring).

    run: checkpoint stages write `ctx.output` atomically (complaw.io.atomic_folder) and return
    None; record stages return the `Record` of `ctx.experiment` with its metrics filled in; the
    runner marks it ok and writes it.
    check: raises RecordError when an existing checkpoint folder is damaged (default: the
    manifest `complaw.json` parses and every .safetensors file is complete).
    """

    name: str
    slot: Slot
    produces: Literal["checkpoint", "record"]
    inputs: tuple[str, ...]
    run: Callable[[StageContext], Record | None]
    resources: Resources = field(default_factory=Resources)
    resolve_options: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    check: Callable[[Path], None] | None = None

    def validate(self, folder: Path) -> None:
        (self.check or check_checkpoint)(folder)


STAGES: Registry[Stage] = Registry("study stage", ConfigError)


def register(stage: Stage) -> Stage:
    """Add `stage` to STAGES under its name."""
    return STAGES.add(stage.name, stage)


def require(name: str, where: str) -> Stage:
    """The registered stage `name`, or an error naming `where` the spec asks for it."""
    if name in STAGES:
        return STAGES.get(name)
    known = ", ".join(STAGES) or "none"
    raise ConfigError(f"{where}: unknown stage {name!r}; registered stages: {known}"
                      f"{STAGES.suggestion(name)} (a plugin module named in the spec's "
                      "plugins registers more)")


def check_safetensors(path: Path) -> None:
    """Raise RecordError unless `path` holds a complete safetensors file (header + all data)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                raise ValueError("header is longer than the file")
            header = json.loads(f.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"{path} is not a valid safetensors file ({exc})") from None
    if 8 + header_len + end != size:
        raise RecordError(f"{path} is truncated: {size} bytes, its header says "
                          f"{8 + header_len + end}")


def check_checkpoint(folder: Path) -> None:
    """The default check of a checkpoint folder: manifest readable, weights complete."""
    manifest = folder / "complaw.json"
    try:
        json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{manifest} is missing or damaged ({exc})") from None
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise RecordError(f"{folder} holds no .safetensors weights")
    for path in weights:
        check_safetensors(path)
