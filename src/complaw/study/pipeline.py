"""One experiment, end to end: load, (compress, recover,) evaluate, record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from complaw.compress import METHODS, CompressionResult, compress
from complaw.compress.checkpoint import MANIFEST, load_compressed, read_manifest, save_compressed
from complaw.data import DataRef, load_blocks, to_blocks, tokenize
from complaw.evaluate import evaluate_loss
from complaw.evaluate.extrinsic import ExtrinsicConfig, evaluate_zero_shot
from complaw.evaluate.speed import SpeedConfig, measure_speed, speed_metrics
from complaw.evaluate.tasks import plan_tasks
from complaw.io import check_target, ensure_dir
from complaw.models import (
    LoadedModel,
    ModelSource,
    adapter_for,
    count_parameters,
    load_model,
    resolve,
)
from complaw.models.loading import parse_dtype
from complaw.study.config import Compression, Experiment, Intrinsic, chain
from complaw.study.records import new_record, write_record


def compression_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The `compression` entry of an experiment config, from a checkpoint's manifest (None: an
    uncompressed model; checkpoints written by `run_compress` carry the entry, older ones are
    rebuilt from their fields)."""
    if manifest["method"] is None:
        return None
    config = manifest["extra"].get("config")
    if config is not None:
        return config["compression"]
    method = METHODS.get(manifest["method"])
    calibration = manifest["extra"].get("calibration") if method.needs_calibration else None
    # what was done, as recorded (not re-validated: a library caller may not have named its
    # calibration data), in the shape of Compression.to_dict()
    return {
        "method": manifest["method"], "ratio": manifest["ratio"], "seed": manifest["seed"],
        "options": method.resolve_options(manifest["options"]), "calibration": calibration,
        "calib_samples": manifest["extra"].get("calib_blocks") if calibration else None,
        "calib_seq_len": manifest["extra"].get("calib_seq_len") if calibration else None,
    }


def recovery_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The `recovery` entry of a config, from a checkpoint's manifest: what recovery was asked
    and did (data, tokens, sequences, LoRA options, ...), without its run statistics."""
    recovery = manifest.get("recovery")
    if recovery is None:
        return None
    return {k: v for k, v in recovery.items() if k != "stats"}


def intrinsic_config(
    model: str, data: str | Sequence[str], seq_len: int = 1024, max_tokens: int | None = None,
    batch_size: int = 4, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration (`Experiment.to_dict()`, validated and resolved) of an intrinsic
    evaluation. `model` may be a compressed or recovered checkpoint folder: the config then
    names its base model, its compression and its recovery, so that the record pairs with the
    base model's record in `law_table` (and has its D)."""
    name, compression, recovery = _subject(model)
    evaluation = Intrinsic(data=data, seq_len=seq_len, max_tokens=max_tokens,
                           batch_size=batch_size)
    experiment = Experiment(model=name, eval=evaluation, dtype=dtype).resolve()
    return {**experiment.to_dict(), "compression": compression, "recovery": recovery}


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


def run_compress(
    model: str, compression: Compression, out: str | Path, dtype: str = "float32",
    device: str = "cpu", data_dir: str | Path | None = None, overwrite: bool = False,
) -> CompressionResult:
    """Load `model`, compress it as `compression` says (resolved first) and save the checkpoint
    into `out` atomically; its manifest carries the experiment prefix (`extra["config"]`).
    The output folder is checked before the expensive work."""
    compression = compression.resolve()
    check_target(out, overwrite)
    loaded = load_model(model, dtype=dtype, device=device, mmap=False)  # every weight is replaced
    blocks = None
    if compression.calibration is not None:
        blocks = load_blocks(
            compression.calibration, loaded.tokenizer, compression.calib_seq_len,
            max_tokens=compression.calib_samples * compression.calib_seq_len, data_dir=data_dir,
        ).to(device)
    result = compress(loaded.model, compression.method, compression.ratio, calibration=blocks,
                      seed=compression.seed, **compression.options)
    extra = {
        "model": model, "calibration": compression.calibration,
        "calib_blocks": None if blocks is None else len(blocks),
        "calib_seq_len": compression.calib_seq_len,
        "config": chain(model, dtype, compression),
    }
    save_compressed(result, out, tokenizer=loaded.tokenizer, extra=extra, overwrite=overwrite)
    return result


def run_intrinsic(
    config: dict[str, Any], out: str | Path | None = None, device: str = "cpu",
    data_dir: str | Path | None = None, location: str | None = None,
) -> dict[str, Any]:
    """Evaluate the test loss that `config` describes; write the record into `out` if given.
    The model is loaded from `location` (default: `config["model"]`).

    Bad input fails before anything is written; a failure during the run is recorded as a
    record with status "failed" and re-raised.
    """
    ev = config["eval"]
    datasets = [ev["data"]] if isinstance(ev["data"], str) else list(ev["data"])
    location = location or config["model"]
    _check_location(location)
    splits = {name: DataRef.parse(name).load(data_dir) for name in datasets}
    if out is not None:
        ensure_dir(out)

    def measure(loaded: LoadedModel, record: dict[str, Any]) -> None:
        record["data"] = {name: split.variant for name, split in splits.items()}
        record["timings"]["evaluate"] = 0.0
        for name, split in splits.items():
            text = to_blocks(tokenize(split.text, loaded.tokenizer), ev["seq_len"],
                             ev["max_tokens"])  # [n, seq_len]
            blocks = loaded.adapter.with_bos(text, loaded.model.config)  # BOS where needed
            result = evaluate_loss(loaded.model, blocks, ev["batch_size"])
            record["timings"]["evaluate"] += result.seconds
            record["metrics"].append(
                {"metric": "loss", "dataset": name, "value": result.loss, **result.as_dict()})

    return _run_record("evaluate", config, out, device, location, measure)


def _subject(model: str) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """The base model name a config records, its compression and its recovery (None where
    `model` is not a complaw checkpoint, or was not compressed or recovered)."""
    if not is_compressed(model):
        return model, None, None
    manifest = read_manifest(model)
    return (manifest["extra"].get("model", model), compression_of(manifest),
            recovery_of(manifest))


def extrinsic_config(
    model: str, extrinsic: ExtrinsicConfig, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of a zero-shot evaluation (`extrinsic` is validated on construction)."""
    name, compression, recovery = _subject(model)
    return {"model": name, "eval": {"kind": "extrinsic", **extrinsic.to_dict()}, "dtype": dtype,
            "compression": compression, "recovery": recovery}


def speed_config(
    model: str, speed: SpeedConfig, baseline: str | None = None, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of a speed measurement of `model` (against `baseline` if given)."""
    name, compression, recovery = _subject(model)
    return {"model": name, "eval": {"kind": "speed", **speed.to_dict()},
            "baseline": _subject(baseline)[0] if baseline else None, "dtype": dtype,
            "compression": compression, "recovery": recovery}


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
    if is_compressed(location) and "achieved" in (manifest := read_manifest(location)):
        record["achieved"] = manifest["achieved"]  # a recovered uncompressed model has none
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
    settings: ExtrinsicConfig | None = None,
) -> dict[str, Any]:
    """Zero-shot accuracy (lm-eval) that `config` describes (or `settings`, when the config is
    a study's); the record's metrics are one "accuracy" entry per task, their mean (the
    extrinsic L) and the "runtime" of the whole evaluation. Bad input (unknown task, missing
    task files) fails before anything is written."""
    settings = settings or ExtrinsicConfig.from_dict(
        {k: v for k, v in config["eval"].items() if k != "kind"})
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
    settings: SpeedConfig | None = None,
) -> dict[str, Any]:
    """Prefill/decode speed that `config` describes (or `settings`, when the config is a
    study's), against its baseline, interleaved in this process, when `config["baseline"]` is
    set; metrics "throughput" (tokens/s per phase), "speedup" (per phase, with the
    FLOP-proportional ideal) and "memory"."""
    settings = settings or SpeedConfig.from_dict(
        {k: v for k, v in config["eval"].items() if k != "kind"})
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
        record["metrics"].extend(speed_metrics(result, config.get("baseline") or baseline_location))

    return _run_record("speed", config, out, device, location, measure)
