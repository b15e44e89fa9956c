"""One experiment, end to end: load, (compress, recover,) evaluate, record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from complaw.data import DataRef, to_blocks, tokenize
from complaw.data.blocks import check_budget
from complaw.errors import ConfigError
from complaw.evaluate import evaluate_loss
from complaw.io import ensure_dir
from complaw.models import count_parameters, load_model, resolve
from complaw.study.records import new_record, write_record


def intrinsic_config(
    model: str, data: str, seq_len: int = 1024, max_tokens: int | None = None,
    batch_size: int = 4, dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration of an intrinsic evaluation of an uncompressed model (validated)."""
    check_budget(seq_len, max_tokens)
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}; pass e.g. 4")
    return {
        "model": model,
        "eval": {"kind": "intrinsic", "data": DataRef.parse(data).name, "seq_len": seq_len,
                 "max_tokens": max_tokens, "batch_size": batch_size},
        "dtype": dtype,
        "compression": None,
        "recovery": None,
    }


def run_intrinsic(
    config: dict[str, Any], out: str | Path | None = None, device: str = "cpu",
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate the test loss that `config` describes; write the record into `out` if given.

    Bad input fails before anything is written; a failure during the run is recorded as a
    record with status "failed" and re-raised.
    """
    if out is not None:
        ensure_dir(out)
    ev = config["eval"]
    resolve(config["model"])  # fail fast on an unknown model or missing data
    text = DataRef.parse(ev["data"]).text(data_dir)
    record = new_record("evaluate", config, device)
    timings = record["timings"]
    start = time.perf_counter()
    loaded = load_model(config["model"], dtype=config["dtype"], device=device)
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
