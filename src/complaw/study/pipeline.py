"""One experiment, end to end: load, (compress, recover,) evaluate, record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from complaw.compress.checkpoint import MANIFEST, load_compressed, read_manifest
from complaw.data import DataRef, to_blocks, tokenize
from complaw.data.blocks import check_budget
from complaw.errors import ConfigError
from complaw.evaluate import evaluate_loss
from complaw.io import ensure_dir
from complaw.models import (
    LoadedModel,
    ModelSource,
    adapter_for,
    count_parameters,
    load_model,
    resolve,
)
from complaw.models.loading import parse_dtype
from complaw.study.records import new_record, write_record


def compression_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The `compression` entry of a config, from a checkpoint's manifest (None: uncompressed)."""
    if manifest["method"] is None:
        return None
    return {
        "method": manifest["method"],
        "ratio": manifest["ratio"],
        "calibration": manifest["extra"].get("calibration"),
        "seed": manifest["seed"],
        "options": manifest["options"],
        "achieved": manifest["achieved"],
    }


def recovery_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The `recovery` entry of a config, from a checkpoint's manifest: what recovery was asked
    and did (data, tokens, sequences, LoRA options, ...), without its run statistics."""
    recovery = manifest.get("recovery")
    if recovery is None:
        return None
    return {k: v for k, v in recovery.items() if k != "stats"}


def intrinsic_config(
    model: str, data: str, seq_len: int = 1024, max_tokens: int | None = None,
    batch_size: int = 4, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of an intrinsic evaluation (validated). `model` may be a compressed
    checkpoint folder: the config then names its base model, its compression and its recovery,
    so that the record pairs with the base model's record in `law_table`."""
    check_budget(seq_len, max_tokens)
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}; pass e.g. 4")
    compression = recovery = None
    if is_compressed(model):
        manifest = read_manifest(model)
        compression, recovery = compression_of(manifest), recovery_of(manifest)
        model = manifest["extra"].get("model", model)
    return {
        "model": model,
        "eval": {"kind": "intrinsic", "data": DataRef.parse(data).name, "seq_len": seq_len,
                 "max_tokens": max_tokens, "batch_size": batch_size},
        "dtype": dtype,
        "compression": compression,
        "recovery": recovery,
    }


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


def run_intrinsic(
    config: dict[str, Any], out: str | Path | None = None, device: str = "cpu",
    data_dir: str | Path | None = None, location: str | None = None,
) -> dict[str, Any]:
    """Evaluate the test loss that `config` describes; write the record into `out` if given.
    The model is loaded from `location` (default: `config["model"]`).

    Bad input fails before anything is written; a failure during the run is recorded as a
    record with status "failed" and re-raised.
    """
    if out is not None:
        ensure_dir(out)
    ev = config["eval"]
    location = location or config["model"]
    if not is_compressed(location):
        resolve(location)  # fail fast on an unknown model or missing data
    text = DataRef.parse(ev["data"]).text(data_dir)
    record = new_record("evaluate", config, device)
    timings = record["timings"]
    start = time.perf_counter()
    loaded = load_subject(location, config["dtype"], device)
    timings["load"] = time.perf_counter() - start
    blocks = to_blocks(tokenize(text, loaded.tokenizer), ev["seq_len"], ev["max_tokens"])
    record["model_source"] = loaded.source.describe()
    record["params"] = count_parameters(loaded.model, loaded.adapter)
    try:
        result = evaluate_loss(loaded.model, blocks, ev["batch_size"])
    except BaseException as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        if out is not None:
            write_record(out, record)
        raise
    timings["evaluate"] = result.seconds
    record["metrics"].append(
        {"metric": "loss", "dataset": ev["data"], "value": result.loss, **result.as_dict()}
    )
    record["status"] = "ok"
    if out is not None:
        record["path"] = str(write_record(out, record))
    return record
