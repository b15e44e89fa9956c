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
from complaw.evaluate.extrinsic import ExtrinsicConfig, evaluate_zero_shot
from complaw.evaluate.speed import SpeedConfig, measure_speed, speed_metrics
from complaw.evaluate.tasks import plan_tasks
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


def compression_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The `compression` entry of a config, from a compressed checkpoint's manifest."""
    return {
        "method": manifest["method"],
        "ratio": manifest["ratio"],
        "calibration": manifest["extra"].get("calibration"),
        "seed": manifest["seed"],
        "options": manifest["options"],
        "achieved": manifest["achieved"],
    }


def intrinsic_config(
    model: str, data: str, seq_len: int = 1024, max_tokens: int | None = None,
    batch_size: int = 4, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of an intrinsic evaluation (validated). `model` may be a compressed
    checkpoint folder: the config then names its base model and its compression, so that the
    record pairs with the base model's record in `law_table`."""
    check_budget(seq_len, max_tokens)
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}; pass e.g. 4")
    compression = None
    if is_compressed(model):
        manifest = read_manifest(model)
        compression = compression_of(manifest)
        model = manifest["extra"].get("model", model)
    return {
        "model": model,
        "eval": {"kind": "intrinsic", "data": DataRef.parse(data).name, "seq_len": seq_len,
                 "max_tokens": max_tokens, "batch_size": batch_size},
        "dtype": dtype,
        "compression": compression,
        "recovery": None,
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


def _subject(model: str) -> tuple[str, dict[str, Any] | None]:
    """The model name a config records and its compression (None for an uncompressed model)."""
    if not is_compressed(model):
        return model, None
    manifest = read_manifest(model)
    return manifest["extra"].get("model", model), compression_of(manifest)


def extrinsic_config(
    model: str, extrinsic: ExtrinsicConfig, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of a zero-shot evaluation (`extrinsic` is validated on construction)."""
    name, compression = _subject(model)
    return {"model": name, "eval": {"kind": "extrinsic", **extrinsic.to_dict()}, "dtype": dtype,
            "compression": compression, "recovery": None}


def speed_config(
    model: str, speed: SpeedConfig, baseline: str | None = None, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of a speed measurement of `model` (against `baseline` if given)."""
    name, compression = _subject(model)
    return {"model": name, "eval": {"kind": "speed", **speed.to_dict()},
            "baseline": _subject(baseline)[0] if baseline else None, "dtype": dtype,
            "compression": compression, "recovery": None}


def _check_location(location: str) -> None:
    if not is_compressed(location):
        resolve(location)  # fail fast on an unknown model


def _run_record(
    kind: str, config: dict[str, Any], out: str | Path | None, device: str,
    location: str, measure: Any,
) -> dict[str, Any]:
    """Load `location`, call `measure(loaded, record)` (which fills the record's metrics), keep
    a failure as a record with status "failed" (re-raised), and write the record into `out`."""
    record = new_record(kind, config, device)
    start = time.perf_counter()
    loaded = load_subject(location, config["dtype"], device)
    record["timings"]["load"] = time.perf_counter() - start
    record["model_source"] = loaded.source.describe()
    record["params"] = count_parameters(loaded.model, loaded.adapter)
    try:
        measure(loaded, record)
    except BaseException as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        if out is not None:
            write_record(out, record)
        raise
    record["status"] = "ok"
    if out is not None:
        record["path"] = str(write_record(out, record))
    return record


def run_extrinsic(
    config: dict[str, Any], out: str | Path | None = None, device: str = "cpu",
    data_dir: str | Path | None = None, location: str | None = None,
) -> dict[str, Any]:
    """Zero-shot accuracy (lm-eval) that `config` describes; the record's metrics are one
    "accuracy" entry per task, their mean (the extrinsic L) and the "runtime" of the whole
    evaluation. Bad input (unknown task, missing task files) fails before anything is written."""
    settings = ExtrinsicConfig.from_dict({k: v for k, v in config["eval"].items()
                                          if k != "kind"})
    location = location or config["model"]
    _check_location(location)
    plan_tasks(settings.tasks, data_dir)
    if out is not None:
        ensure_dir(out)

    def measure(loaded: LoadedModel, record: dict[str, Any]) -> None:
        result = evaluate_zero_shot(loaded, settings, data_dir)
        record["timings"]["evaluate"] = result["seconds"]
        record["metrics"].extend(result["metrics"])

    return _run_record("evaluate", config, out, device, location, measure)


def run_speed(
    config: dict[str, Any], out: str | Path | None = None, device: str = "cpu",
    location: str | None = None, baseline_location: str | None = None,
) -> dict[str, Any]:
    """Prefill/decode speed that `config` describes (against its baseline, interleaved in this
    process, when `config["baseline"]` is set); metrics "throughput" (tokens/s per phase),
    "speedup" (per phase, with the FLOP-proportional ideal) and "memory"."""
    settings = SpeedConfig.from_dict({k: v for k, v in config["eval"].items() if k != "kind"})
    location = location or config["model"]
    baseline_location = baseline_location or config.get("baseline")
    _check_location(location)
    if baseline_location:
        _check_location(baseline_location)
    if out is not None:
        ensure_dir(out)

    def measure(loaded: LoadedModel, record: dict[str, Any]) -> None:
        baseline = (load_subject(baseline_location, config["dtype"], device)
                    if baseline_location else None)
        start = time.perf_counter()
        result = measure_speed(loaded, settings, baseline)
        record["timings"]["evaluate"] = time.perf_counter() - start
        record["speed"] = result
        record["metrics"].extend(speed_metrics(result, config.get("baseline")))

    return _run_record("speed", config, out, device, location, measure)
