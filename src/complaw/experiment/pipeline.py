"""The single-model pipeline: load a subject (a model or a complaw checkpoint), run one stage
on it, build its typed config and write its `Record`. The CLI and the study's stages both call
it, so that one experiment has one config, and one record id, whichever entry point ran it.

`experiment_of` is that one builder: a checkpoint folder names its base model, its compression
and its recovery (from its manifest), so that its record pairs with the base model's record in
`law_table` and has its D.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from complaw.compress import METHODS, CompressionResult, compress
from complaw.compress.checkpoint import (
    Manifest,
    is_compressed,
    load_subject,
    read_manifest,
    save_compressed,
)
from complaw.config import (
    Compression,
    Evaluation,
    Experiment,
    ExtrinsicOptions,
    Recovery,
    SpeedOptions,
    chain,
)
from complaw.data import DataRef, to_blocks, tokenize
from complaw.evaluate.extrinsic import evaluate_zero_shot
from complaw.evaluate.intrinsic import evaluate_loss
from complaw.evaluate.speed import measure_speed, speed_metrics
from complaw.evaluate.tasks import plan_tasks
from complaw.experiment.records import Record, recovery_from_manifest
from complaw.io import check_target, ensure_dir
from complaw.models import LoadedModel, count_parameters, load_model, resolve


def compression_of(manifest: Manifest) -> Compression | None:
    """The compression a checkpoint's manifest records (None: an uncompressed model;
    checkpoints written by `run_compress` carry their config, older ones are rebuilt from their
    fields: what was done, as recorded, not re-validated)."""
    if manifest.method is None:
        return None
    extra = manifest.extra
    if extra.get("config") is not None:
        return Compression.from_dict(extra["config"]["compression"])
    method = METHODS.get(manifest.method)
    calibration = extra.get("calibration") if method.needs_calibration else None
    return Compression(
        method=manifest.method, ratio=manifest.ratio, seed=manifest.seed,
        options=method.resolve_options(manifest.options or {}), calibration=calibration,
        calib_samples=extra.get("calib_blocks") if calibration else None,
        calib_seq_len=extra.get("calib_seq_len") if calibration else None,
    )


def recovery_of(manifest: Manifest) -> Recovery | None:
    """The recovery a checkpoint's manifest records (None: not recovered)."""
    entry = manifest.recovery
    return None if entry is None else Recovery.from_dict(recovery_from_manifest(entry))


def base_model(location: str) -> str:
    """The base model a model or checkpoint folder was made from (itself for a model)."""
    if not is_compressed(location):
        return location
    return read_manifest(location).base_model or location


def experiment_of(model: str, evaluation: Evaluation, dtype: str = "float32",
                  baseline: str | None = None) -> Experiment:
    """The experiment of evaluating `model` (a model, or a checkpoint folder) as `evaluation`
    says (resolved here), timed against `baseline` for speed (dropped where it is the study's
    own convention: a compressed model against its base model)."""
    name, compression, recovery = model, None, None
    if is_compressed(model):
        manifest = read_manifest(model)
        name = manifest.base_model or model
        compression, recovery = compression_of(manifest), recovery_of(manifest)
    if baseline is not None:
        baseline = base_model(baseline)
        if baseline == name and compression is not None:
            baseline = None
    return Experiment(model=name, eval=evaluation.resolve(), dtype=dtype,
                      compression=compression, recovery=recovery, baseline=baseline)


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
    blocks, variant = None, None
    if compression.calibration is not None:
        split = DataRef.parse(compression.calibration).load(data_dir)
        variant = split.variant
        blocks = to_blocks(tokenize(split.text, loaded.tokenizer), compression.calib_seq_len,
                           compression.calib_samples * compression.calib_seq_len).to(device)
    result = compress(loaded.model, compression.method, compression.ratio, calibration=blocks,
                      seed=compression.seed, **compression.options)
    extra = {
        "model": model, "calibration": compression.calibration,
        "calibration_variant": variant,
        "calib_blocks": None if blocks is None else len(blocks),
        "calib_seq_len": compression.calib_seq_len,
        "config": chain(model, dtype, compression),
    }
    save_compressed(result, out, tokenizer=loaded.tokenizer, extra=extra, overwrite=overwrite)
    return result


CALIBRATION = "calibration"
"""The key of a compressed model's record `data` that names its calibration data and variant
(`{"data": "wikitext2:train", "file", "sha256", ...}`, from the checkpoint's manifest)."""


def _check_location(location: str) -> None:
    if not is_compressed(location):
        resolve(location)  # fail fast on an unknown model


def _run_record(
    kind: str, experiment: Experiment, out: str | Path | None, device: str, location: str,
    measure: Callable[[LoadedModel, Record], None],
) -> Record:
    """Load `location`, call `measure(loaded, record)` (which fills the record's metrics), keep
    a failure as a record with status "failed" (re-raised), and write the record into `out`."""
    record = Record.new(kind, experiment, device)
    start = time.perf_counter()
    loaded = load_subject(location, experiment.dtype, device)
    record.timings["load"] = time.perf_counter() - start
    if is_compressed(location):
        manifest = read_manifest(location)
        record.achieved = manifest.achieved  # None: a recovered base model
        if manifest.extra.get("calibration_variant"):  # the data the compression was fitted on
            record.data[CALIBRATION] = {"data": manifest.extra["calibration"],
                                        **manifest.extra["calibration_variant"]}
    record.model_source = loaded.source.describe()
    record.params = count_parameters(loaded.model, loaded.adapter)
    try:
        measure(loaded, record)
    except BaseException as exc:
        record.fail(f"{type(exc).__name__}: {exc}")
        if out is not None:
            record.write(out)
        raise
    record.status = "ok"
    if out is not None:
        record.write(out)
    return record


def run_intrinsic(
    experiment: Experiment, out: str | Path | None = None, device: str = "cpu",
    data_dir: str | Path | None = None, location: str | None = None,
) -> Record:
    """Evaluate the test loss that `experiment` describes; write the record into `out` if
    given. The model is loaded from `location` (default: the experiment's model).

    Bad input fails before anything is written; a failure during the run is recorded as a
    record with status "failed" and re-raised.
    """
    ev = experiment.eval
    location = location or experiment.model
    _check_location(location)
    splits = {name: DataRef.parse(name).load(data_dir) for name in ev.data}
    if out is not None:
        ensure_dir(out)

    def measure(loaded: LoadedModel, record: Record) -> None:
        record.data.update({name: split.variant for name, split in splits.items()})
        record.timings["evaluate"] = 0.0
        for name, split in splits.items():
            text = to_blocks(tokenize(split.text, loaded.tokenizer), ev.seq_len,
                             ev.max_tokens)  # [n, seq_len]
            blocks = loaded.adapter.with_bos(text, loaded.model.config)  # BOS where needed
            result = evaluate_loss(loaded.model, blocks, ev.batch_size)
            record.timings["evaluate"] += result.seconds
            record.metrics.append(
                {"metric": "loss", "dataset": name, "value": result.loss, **result.as_dict()})

    return _run_record("evaluate", experiment, out, device, location, measure)


def run_extrinsic(
    experiment: Experiment, out: str | Path | None = None, device: str = "cpu",
    data_dir: str | Path | None = None, location: str | None = None,
) -> Record:
    """Zero-shot accuracy (lm-eval) that `experiment` describes; the record's metrics are one
    "accuracy" and one "task_loss" entry per task, the accuracies' mean (the extrinsic L) and the
    "runtime" of the whole evaluation (a `TaskLoss` evaluation: the task losses and the runtime
    only). Bad input (unknown task, missing task files) fails before anything is
    written."""
    ev = experiment.eval
    location = location or experiment.model
    _check_location(location)
    plan_tasks(ev.tasks, data_dir)
    if out is not None:
        ensure_dir(out)

    def measure(loaded: LoadedModel, record: Record) -> None:
        result = evaluate_zero_shot(loaded, ev.tasks, ev.limit,
                                    ExtrinsicOptions.from_dict(ev.options), data_dir,
                                    score="target" if ev.kind == "task_loss" else "choices")
        record.timings["evaluate"] = result["seconds"]
        record.metrics.extend(result["metrics"])

    return _run_record("evaluate", experiment, out, device, location, measure)


def run_speed(
    experiment: Experiment, out: str | Path | None = None, device: str = "cpu",
    location: str | None = None, baseline_location: str | None = None,
) -> Record:
    """Prefill/decode speed that `experiment` describes, against its baseline (interleaved in
    this process) when `baseline_location` (default: the experiment's baseline) is set;
    metrics "throughput" (tokens/s per phase), "speedup" (per phase, with the
    FLOP-proportional ideal) and "memory"."""
    location = location or experiment.model
    baseline_location = baseline_location or experiment.baseline
    _check_location(location)
    if baseline_location:
        _check_location(baseline_location)
    if out is not None:
        ensure_dir(out)

    def measure(loaded: LoadedModel, record: Record) -> None:
        baseline = (load_subject(baseline_location, experiment.dtype, device)
                    if baseline_location else None)
        start = time.perf_counter()
        result = measure_speed(loaded, SpeedOptions.from_dict(experiment.eval.options), baseline)
        record.timings["evaluate"] = time.perf_counter() - start
        record.speed = result
        record.metrics.extend(speed_metrics(result, experiment.baseline or baseline_location))

    return _run_record("speed", experiment, out, device, location, measure)
