"""Experiment records: one JSON file per run, named by the hash of its configuration.

A record is a dict with the keys
  id, kind, created, status ("ok" | "failed"), error,
  config       the full configuration (model, data, evaluation settings, compression, recovery),
  environment  versions and device,
  params       parameter counts {"total", "blocks"} of the evaluated model (and of its base),
  metrics      a list of {"metric": "loss" | "accuracy" | "runtime", "dataset", "value", ...},
  data         {dataset ref: data variant} of the data evaluated on (see complaw.data.SplitText),
  timings      seconds per stage.
`config` is `complaw.study.config.Experiment.to_dict()`: {"model", "dtype", "eval" ({"kind", ...}),
"compression" (None, or {"method", "ratio", "seed", "options" (resolved), "calibration",
"calib_samples", "calib_seq_len"}), "recovery" (None, or {"dataset", "samples", "seq_len", "seed",
"options", "tokens"})}. A record of a compressed model also keeps `achieved` (the fractional
parameter reduction, from the checkpoint's manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from complaw.errors import RecordError
from complaw.io import ensure_dir, write_json_atomic
from complaw.laws.table import COLUMNS

LAW_COLUMNS = list(COLUMNS)  # the law table's columns are defined once, in complaw.laws.table
_VARIANT_KEYS = ("compression", "recovery")


def config_id(config: dict[str, Any]) -> str:
    """Content address of a configuration: sha256 of its canonical JSON, 16 hex digits."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _environment(device: str) -> dict[str, Any]:
    versions = {}
    for pkg in ("complaw", "torch", "transformers", "peft", "numpy", "lm_eval"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "device": device,
        "versions": versions,
    }


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions and machine facts worth keeping next to every measurement."""
    return json.loads(json.dumps(_environment(device)))  # a copy: callers may change it


def new_record(kind: str, config: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """A fresh record for `config`, status "running" until finished."""
    return {
        "id": config_id(config),
        "kind": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        "error": None,
        "config": config,
        "environment": environment(device),
        "params": {},
        "metrics": [],
        "timings": {},
    }


def write_record(folder: str | Path, record: dict[str, Any]) -> Path:
    """Write `record` atomically to `folder/<id>.json`."""
    return write_json_atomic(ensure_dir(folder) / f"{record['id']}.json", record)


@dataclass
class RecordSet:
    records: list[dict[str, Any]]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def frame(self) -> pd.DataFrame:
        """One row per record, nested keys flattened (config.model, params.total, ...)."""
        rows = [{k: v for k, v in r.items() if k != "metrics"} for r in self.records]
        return pd.json_normalize(rows)


def read_records(folder: str | Path) -> RecordSet:
    """Every `*.json` record in `folder` (or in its `records/`, for a study folder); unreadable
    or malformed files are reported, not fatal."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"records folder {str(folder)!r} does not exist; pass a study folder")
    if (folder / "records").is_dir() and not any(folder.glob("*.json")):
        folder = folder / "records"  # a study folder written by `complaw run`
    out = RecordSet([])
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            missing = {"id", "config", "metrics", "status"} - set(record)
            if missing:
                raise ValueError(f"missing keys {sorted(missing)}")
        except (OSError, ValueError) as exc:
            out.problems.append((str(path), str(exc)))
            continue
        out.records.append(record)
    return out


def load_records(folder: str | Path) -> pd.DataFrame:
    """A DataFrame of the records in `folder` (see RecordSet.frame); problems in `.attrs`."""
    records = read_records(folder)
    df = records.frame()
    df.attrs["problems"] = records.problems
    return df


def _base_key(config: dict[str, Any]) -> str:
    """What a variant shares with its uncompressed, un-recovered base: all but the variant keys."""
    return config_id({k: v for k, v in config.items() if k not in _VARIANT_KEYS})


def _variant_key(record: dict[str, Any], dataset: str) -> str:
    """A short, stable name of the data variant a record's metric on `dataset` used."""
    variant = record.get("data", {}).get(dataset)
    return config_id(variant)[:8] if variant else ""


def law_table(folder: str | Path) -> pd.DataFrame:
    """Rows for fitting laws (columns LAW_COLUMNS and the experiment's ``seed``, which the
    laws' noise floor reads): one per metric of each compressed or
    recovered model, with L0 taken from the matching base record (same config but for
    compression and recovery, and the same data variant). Metrics without a base are skipped
    and counted in `.attrs["unmatched"]`. Where one dataset was measured on several data
    variants, its rows are named `dataset@variant`, so that no law mixes them."""
    records = [r for r in read_records(folder).records if r["status"] == "ok"]
    base: dict[tuple[str, str, str, str], float] = {}
    variants: dict[str, set[str]] = {}
    for r in records:
        for m in r["metrics"]:
            variants.setdefault(m["dataset"], set()).add(_variant_key(r, m["dataset"]))
        if not r["config"].get("compression") and not r["config"].get("recovery"):
            for m in r["metrics"]:
                key = (_base_key(r["config"]), m["metric"], m["dataset"],
                       _variant_key(r, m["dataset"]))
                base[key] = m["value"]
    rows, unmatched = [], 0
    for r in records:
        comp = r["config"].get("compression") or {}
        rec = r["config"].get("recovery") or {}
        if not comp and not rec:
            continue
        for m in r["metrics"]:
            variant = _variant_key(r, m["dataset"])
            key = (_base_key(r["config"]), m["metric"], m["dataset"], variant)
            if key not in base:
                unmatched += 1
                continue
            dataset = m["dataset"]
            if len(variants[dataset]) > 1:
                dataset = f"{dataset}@{variant or 'unknown'}"
            rows.append({
                "model": r["config"]["model"],
                "method": comp.get("method", "none"),
                "calibration": comp.get("calibration") or "none",
                "dataset": dataset,
                "metric": m["metric"],
                "L": m["value"],
                "L0": base[key],
                "r": comp.get("ratio", 0.0),
                "D": rec.get("tokens", 0),
                "seed": comp.get("seed", rec.get("seed", 0)),
            })
    df = pd.DataFrame(rows, columns=[*LAW_COLUMNS, "seed"])
    df.attrs["unmatched"] = unmatched
    return df
