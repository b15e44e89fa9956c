"""Compressed checkpoints: one folder per compressed model, written atomically.

Format (a folder):
- the model, as written by the method's `save_model` (by default a plain HF checkpoint:
  `config.json`, `generation_config.json`, `model.safetensors`). PruneNet and layerdrop models
  are standard architectures, so `AutoModelForCausalLM.from_pretrained(folder)` loads them
  without complaw; methods with their own format (e.g. SliceGPT) document it in their module;
- the tokenizer files (`tokenizer.json`, `tokenizer_config.json`, ...), when one is given;
- `complaw.json`, the manifest: {"format": "complaw-compressed", "format_version": 1,
  "method", "ratio", "seed", "options", "params_before", "params_after" ({"total", "blocks"}),
  "achieved" (fractional reduction of each count), "seconds" (compression time),
  "complaw_version", "torch_version", "transformers_version", "created" (UTC ISO time),
  "extra" (the caller's dict or {})}.
  A checkpoint written by recovery fine-tuning (`complaw.recover`) chains base → compression →
  recovery: it keeps its input's manifest and adds "recovery" (see docs/recover.md). When the
  input was an uncompressed model, the manifest holds only "format", "format_version",
  "method": null, the versions, "created", "extra" ({"model": the base model}) and "recovery";
  its model is a plain HF checkpoint.

`Manifest` is that file, typed: every writer builds one, every reader goes through
`Manifest.from_dict` (`read_manifest`).

Everything is written into a temporary folder beside the target, which is renamed into place
only when complete: a failure leaves no partial checkpoint. An existing non-empty target is an
error unless `overwrite=True`. `load_compressed` reads the manifest and loads the model through
the recorded method's `load_model`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from complaw import __version__
from complaw.compress.base import METHODS, CompressionResult
from complaw.errors import ComplawError, RecordError
from complaw.io import atomic_folder, write_json_atomic
from complaw.models import LoadedModel, ModelSource, adapter_for, load_model
from complaw.models.loading import parse_dtype
from complaw.settings import check_fields

MANIFEST = "complaw.json"
FORMAT = "complaw-compressed"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """A checkpoint's `complaw.json` (see the module docstring). The compression fields are
    None for an uncompressed model that was recovered; `recovery` is None until recovery.
    `extra` is the caller's: `run_compress` keeps the base model ("model"), the calibration
    data and the experiment prefix ("config") there."""

    method: str | None
    complaw_version: str
    torch_version: str
    transformers_version: str
    created: str
    extra: dict[str, Any]
    ratio: float | None = None
    seed: int | None = None
    options: dict[str, Any] | None = None
    params_before: dict[str, int] | None = None
    params_after: dict[str, int] | None = None
    achieved: dict[str, float] | None = None
    seconds: float | None = None
    recovery: dict[str, Any] | None = None

    @classmethod
    def new(cls, method: str | None, extra: dict[str, Any] | None = None, **values: Any
            ) -> Manifest:
        """A manifest written now, by these versions."""
        return cls(method=method, complaw_version=__version__, torch_version=torch.__version__,
                   transformers_version=transformers.__version__,
                   created=datetime.now(UTC).isoformat(timespec="seconds"), extra=extra or {},
                   **values)

    @property
    def base_model(self) -> str | None:
        """The model this checkpoint was made from, where its writer named it."""
        return self.extra.get("model")

    def to_dict(self) -> dict[str, Any]:
        """The file's content: format and version first, unset optional fields left out."""
        optional = {f.name for f in fields(self) if f.default is None}
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                **{k: v for k, v in asdict(self).items() if v is not None or k not in optional}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> Manifest:
        """The manifest `data` holds; RecordError naming `source` if it is another format or
        version, or malformed."""
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise RecordError(
                f"{source} has format {data.get('format')!r} version "
                f"{data.get('format_version')!r}; this complaw reads {FORMAT!r} version "
                f"{FORMAT_VERSION}"
            )
        values = {k: v for k, v in data.items() if k not in ("format", "format_version")}
        try:
            return check_fields(cls, values, "manifest key", source, RecordError)
        except (ComplawError, TypeError) as exc:
            raise RecordError(f"{source} is malformed ({exc})") from None


def manifest_of(result: CompressionResult, extra: dict[str, Any] | None = None) -> Manifest:
    """The manifest describing `result`."""
    return Manifest.new(
        result.method, extra, ratio=result.ratio, seed=result.seed, options=result.options,
        params_before=result.params_before, params_after=result.params_after,
        achieved=result.achieved, seconds=result.seconds,
    )


def recovered_manifest(base: Manifest | None, recovery: dict[str, Any], model: str | None = None
                       ) -> Manifest:
    """The manifest of a recovered checkpoint: `base` (the input checkpoint's manifest, None for
    an uncompressed input named `model`) with the `recovery` entry added."""
    if base is not None:
        return dataclasses.replace(base, recovery=recovery)
    return Manifest.new(None, {"model": model}, recovery=recovery)


def save_checkpoint(
    model: PreTrainedModel,
    folder: Path | str,
    manifest: Manifest,
    tokenizer: PreTrainedTokenizerBase | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `model` (by the manifest's method, or as plain HF when its method is null), the
    tokenizer and the manifest into `folder`, atomically."""
    method = manifest.method
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        if method is None:
            model.save_pretrained(tmp)
        else:
            METHODS.get(method).save_model(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / MANIFEST, manifest.to_dict())
    return Path(folder)


def save_compressed(
    result: CompressionResult,
    folder: Path | str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `result`'s model, the tokenizer and the manifest into `folder`, atomically."""
    METHODS.get(result.method)  # an unknown method fails before anything is written
    return save_checkpoint(result.model, folder, manifest_of(result, extra), tokenizer, overwrite)


def read_manifest(folder: Path | str) -> Manifest:
    """The manifest of the compressed checkpoint in `folder`."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(
            f"{str(folder)!r} is not a complaw compressed checkpoint: {MANIFEST} is missing"
        ) from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path} is not valid JSON ({exc}); the checkpoint is damaged") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path} must hold a JSON object; the checkpoint is damaged")
    return Manifest.from_dict(data, str(path))


def load_compressed(
    folder: Path | str, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, Manifest]:
    """Load the compressed (or recovered) model in `folder` (eval mode) and its manifest."""
    manifest = read_manifest(folder)
    if manifest.method is None:  # a recovered uncompressed model: plain HF
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    else:
        model = METHODS.get(manifest.method).load_model(Path(folder), dtype=dtype)
    return model.eval(), manifest


def is_compressed(location: str | Path) -> bool:
    return (Path(location) / MANIFEST).is_file()


def load_subject(location: str, dtype: str, device: str) -> LoadedModel:
    """Load a model, or a compressed checkpoint written by `complaw compress`."""
    if not is_compressed(location):
        return load_model(location, dtype=dtype, device=device)
    model, _ = load_compressed(location, parse_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(location)
    source = ModelSource("folder", str(Path(location).resolve()))
    return LoadedModel(location, source, model.to(device), tokenizer, adapter_for(model), dtype)
