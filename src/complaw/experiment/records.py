"""Experiment records: one typed `Record` per experiment, one JSON file each, named by the
content id of its configuration and written atomically.

A record holds
  id, kind ("evaluate" | "speed"), created, status ("running" | "ok" | "failed"), error,
  failed_stage (the stage that failed, in a study),
  config       the experiment (`complaw.config.Experiment`; in the file, its `to_dict()`),
  environment  versions and device,
  params       parameter counts {"total", "blocks"} of the evaluated model,
  achieved     a compressed model's fractional parameter reduction (from its manifest),
  model_source where the evaluated model was loaded from,
  metrics      a list of {"metric": "loss" | "accuracy" | "runtime" | ..., "dataset", "value", ...},
  data         {dataset ref: data variant} of the data evaluated on (see complaw.data.SplitText),
  speed        a speed measurement's full summary,
  timings      seconds per step.
Every writer builds a `Record` (`Record.new`) and every reader goes through `Record.from_dict`,
which first brings files written by older complaw versions to today's shape (`migrate`) and
gives the record its experiment's id as complaw computes it today (`Experiment.id`): a file
written before execution-only settings left the id keeps the name it was written under, and a
study finds it by the id its config has now (complaw.study.runner.StudyRecords).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from complaw.config import Experiment, Recovery, config_id
from complaw.errors import ComplawError, LawError, RecordError
from complaw.experiment.folder import StudyFolder
from complaw.io import ensure_dir, write_json_atomic
from complaw.laws.metrics import METRICS
from complaw.laws.table import COLUMNS, SIZE, read_table, validate

LAW_COLUMNS = list(COLUMNS)  # the law table's columns are defined once, in complaw.laws.table
_VARIANT_KEYS = ("compression", "recovery")
# keys of an older recovered manifest's "recovery" entry that describe the run, not its config
_RESULT_KEYS = ("dataset", "data_variant", "tokens", "samples", "sequences", "steps", "seq_len",
                "seed", "stats")


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


def recovery_from_manifest(entry: dict[str, Any]) -> dict[str, Any]:
    """The `recovery` entry of an experiment config (`Recovery.to_dict()`) that the "recovery"
    entry of a recovered checkpoint's manifest describes (written by `complaw.recover.recover`:
    its data, budget and seed beside the LoRA options)."""
    stats = entry.get("stats") or {}
    options = {k: v for k, v in entry.items() if k not in _RESULT_KEYS}
    options.update({k: stats[k] for k in Recovery.execution if k in stats})
    samples, seq_len = entry.get("samples"), entry["seq_len"]
    return {"dataset": entry["dataset"], "samples": samples, "seq_len": seq_len,
            "seed": entry["seed"], "options": options,
            "tokens": samples * seq_len if samples else entry["tokens"]}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A record file's dict in today's shape. Older records differ in their `config` only:
    `complaw evaluate --tasks` kept lm-eval's batch_size and num_fewshot beside the tasks (now
    the extrinsic `options`); `complaw speed` kept its settings in `eval` (now `options`, with
    the `device`) and a `baseline` also where it was none or the base model; evaluations of
    recovered checkpoints kept the manifest's recovery entry (now `Recovery.to_dict()`)."""
    config = dict(data.get("config") or {})
    ev = dict(config.get("eval") or {})
    kind = ev.get("kind")
    if kind == "extrinsic" and "options" not in ev:
        ev = {"kind": kind, "tasks": ev.get("tasks", []), "limit": ev.get("limit"),
              "options": {k: v for k, v in ev.items() if k not in ("kind", "tasks", "limit")}}
    if kind == "speed" and "options" not in ev:
        device = (data.get("environment") or {}).get("device", "cpu")
        ev = {"kind": kind, "device": device,
              "options": {k: v for k, v in ev.items() if k != "kind"}}
    if "baseline" in config and (config["baseline"] is None or (
            config["baseline"] == config.get("model") and config.get("compression"))):
        del config["baseline"]  # none, or the study's convention: a compressed model's base
    recovery = config.get("recovery")
    if recovery is not None and "options" not in recovery:
        config["recovery"] = recovery_from_manifest(recovery)
    return {**data, "config": {**config, "eval": ev}}


@dataclass
class Record:
    """One experiment's result (see the module docstring)."""

    id: str
    kind: str
    config: Experiment
    created: str
    environment: dict[str, Any]
    status: str = "running"
    error: str | None = None
    failed_stage: str | None = None
    params: dict[str, int] = field(default_factory=dict)
    achieved: dict[str, float] | None = None
    model_source: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def new(cls, kind: str, config: Experiment, device: str = "cpu") -> Record:
        """A fresh record of experiment `config`, status "running" until finished."""
        return cls(id=config.id, kind=kind, config=config,
                   created=datetime.now(UTC).isoformat(timespec="seconds"),
                   environment=environment(device))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fail(self, error: str, stage: str | None = None) -> Record:
        """Mark this record failed with `error` (at study stage `stage`)."""
        self.status, self.error, self.failed_stage = "failed", error, stage
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """The record a file's dict holds, migrated from older shapes; RecordError names what
        is missing or malformed."""
        if not isinstance(data, dict):
            raise RecordError(f"a record is a JSON object, not {type(data).__name__}")
        missing = sorted({"id", "config", "metrics", "status"} - set(data))
        if missing:
            raise RecordError(f"missing keys {missing}")
        data = migrate(data)
        known = {f.name for f in fields(cls)}
        try:
            config = Experiment.from_dict(data["config"])
        except (ComplawError, KeyError, TypeError) as exc:
            raise RecordError(f"its config is not an experiment ({exc})") from None
        defaults = {"created": "", "environment": {}, "kind": "evaluate"}
        values = {**defaults, **{k: v for k, v in data.items() if k in known}}
        return cls(**{**values, "config": config, "id": config.id})

    @property
    def file_name(self) -> str:
        return f"{self.id}.json"

    def write(self, folder: str | Path) -> Path:
        """Write this record atomically to `folder/<id>.json`."""
        return write_json_atomic(ensure_dir(folder) / self.file_name, self.to_dict())


def read_record(path: Path) -> Record:
    """The record in file `path`; RecordError if it cannot be read or is malformed."""
    try:
        return Record.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecordError) as exc:
        raise RecordError(f"{path} is damaged ({exc})") from None


@dataclass
class RecordSet:
    records: list[Record]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def read_records(folder: str | Path) -> RecordSet:
    """Every record of study folder `folder` (or of a plain folder of record files), one per
    experiment on the same data files: a file an earlier complaw named by an older id and a
    newer file of the same measurement count once (the finished one, else the newer).
    Unreadable or malformed files are reported, not fatal."""
    study = StudyFolder(folder).require()
    out = RecordSet([])
    chosen: dict[tuple[str, str], Record] = {}
    for path in sorted(study.records.glob("*.json")):
        try:
            record = read_record(path)
        except RecordError as exc:
            out.problems.append((str(path), str(exc)))
            continue
        key = (record.id, config_id(record.data))
        other = chosen.get(key)
        if other is None or (record.ok, record.created) > (other.ok, other.created):
            chosen[key] = record
    out.records = list(chosen.values())
    return out


def _same_requests(config: Experiment, drop: tuple[str, ...] = ()) -> str:
    """The id of `config` without its `drop` keys and its evaluation's kind: a zero-shot and a
    task-loss-only evaluation of one model make the same requests, so the same task loss."""
    data = {k: v for k, v in config.identity().items() if k not in drop}
    return config_id({**data, "eval": {k: v for k, v in data["eval"].items() if k != "kind"}})


def _base_key(config: Experiment) -> str:
    """What a variant shares with its uncompressed, un-recovered base: all but the variant keys
    (and the evaluation's kind; metric names tell evaluations apart)."""
    return _same_requests(config, _VARIANT_KEYS)


def _variant_key(record: Record, dataset: str) -> str:
    """A short, stable name of the data variant a record's metric on `dataset` used."""
    variant = record.data.get(dataset)
    return config_id(variant)[:8] if variant else ""


def law_table(folder: str | Path) -> pd.DataFrame:
    """Rows for fitting laws (columns LAW_COLUMNS, the experiment's ``seed``, which the
    laws' noise floor reads, the record id as ``experiment``, the standard error of L from its
    documents as ``L_se``, a zero-shot task's chance accuracy as ``chance`` and the base model's
    task loss on the task as ``T0``, NaN where they do not apply): one per metric of each
    compressed or recovered model, with L0 taken from the matching base record (same config but for
    compression and recovery, and the same data variant). Metrics without a base are skipped
    and counted in `.attrs["unmatched"]`. Where one dataset was measured on several data
    variants, its rows are named `dataset@variant`, so that no law mixes them."""
    records = [r for r in read_records(folder).records if r.ok]
    base: dict[tuple[str, str, str, str], float] = {}
    sizes = _sizes(records)
    variants: dict[str, set[str]] = {}
    for r in records:
        for m in r.metrics:
            variants.setdefault(m["dataset"], set()).add(_variant_key(r, m["dataset"]))
        if r.config.is_base:
            for m in r.metrics:
                key = (_base_key(r.config), m["metric"], m["dataset"],
                       _variant_key(r, m["dataset"]))
                base[key] = m["value"]
    rows, unmatched, measured = [], 0, set()
    for r in records:
        if r.config.is_base:
            continue
        comp, rec = r.config.compression, r.config.recovery
        for m in r.metrics:
            if m["metric"] == "task_loss":  # measured once per model, whichever kind ran it
                same = (_same_requests(r.config), m["dataset"])
                if same in measured:
                    continue
                measured.add(same)
            variant = _variant_key(r, m["dataset"])
            key = (_base_key(r.config), m["metric"], m["dataset"], variant)
            if key not in base:
                unmatched += 1
                continue
            dataset = m["dataset"]
            if len(variants[dataset]) > 1:
                dataset = f"{dataset}@{variant or 'unknown'}"
            rows.append({
                "model": r.config.model,
                "method": comp.method if comp else "none",
                "calibration": (comp.calibration if comp else None) or "none",
                "dataset": dataset,
                "metric": m["metric"],
                "L": m["value"],
                "L0": base[key],
                "r": comp.ratio if comp else 0.0,
                "D": rec.tokens if rec else 0,
                "seed": comp.seed if comp else rec.seed,
                "experiment": r.id,
                "L_se": _stderr(m),
                "chance": m.get("chance", float("nan")),
                "T0": base.get((key[0], "task_loss", *key[2:]), float("nan")),
                SIZE: sizes.get(key[0], float("nan")),
            })
    df = pd.DataFrame(rows, columns=[*LAW_COLUMNS, "seed", "experiment", "L_se", "chance", "T0",
                                     SIZE])
    df.attrs["unmatched"] = unmatched
    return df


def _stderr(metric: dict[str, Any]) -> float:
    """The standard error of a metric entry's value from its documents (NaN when unknown):
    `stderr`, or in records from before it, the chosen accuracy metric's lm-eval stderr."""
    value = metric.get("stderr", metric.get(f"{metric.get('chosen')}_stderr"))
    return float("nan") if value is None else float(value)


def base_table(folder: str | Path) -> pd.DataFrame:
    """What the base models (uncompressed, not recovered) of `folder` measured: columns model,
    dataset, metric, L0 and the model's size `SIZE`, one row per metric of each finished base
    record."""
    records = [r for r in read_records(folder).records if r.ok and r.config.is_base]
    sizes = _sizes(records)
    rows = [{"model": r.config.model, "dataset": m["dataset"], "metric": m["metric"],
             "L0": m["value"], SIZE: sizes.get(_base_key(r.config), float("nan"))}
            for r in records for m in r.metrics]
    return pd.DataFrame(rows, columns=["model", "dataset", "metric", "L0", SIZE])


def _sizes(records: list[Record]) -> dict[str, float]:
    """The non-embedding parameters (``params["blocks"]``) of each base model, by
    `_base_key`: what a law's size trend reads (`complaw.laws.table.SIZE`)."""
    return {_base_key(r.config): float(r.params["blocks"]) for r in records
            if r.config.is_base and r.params.get("blocks")}


class NoLawRowsError(LawError):
    """A study folder holds no law rows (only baselines, or none that match one)."""


def load_law_table(
    path: str | Path, on_skip: Callable[[list[str]], None] | None = None
) -> pd.DataFrame:
    """The validated law table of a ``.csv``/``.parquet`` file or a study folder (`law_table`).
    A study's records also hold metrics no law models (speed's tokens/s and memory): those rows
    are left out and, when given, ``on_skip`` is called with their names."""
    path = Path(path)
    if not path.is_dir():
        if not path.exists():
            raise LawError(
                f"records {str(path)!r} do not exist; give a CSV/Parquet file or a study folder"
            )
        return read_table(path)
    table = law_table(path)
    if len(table) == 0:
        unmatched = table.attrs.get("unmatched", 0)
        raise NoLawRowsError(
            f"no law rows in {str(path)!r} ({unmatched} metric(s) without a matching "
            "uncompressed record); run the base models too, or check the folder"
        )
    skipped = sorted(set(table["metric"]) - set(METRICS))
    if skipped and on_skip is not None:
        on_skip(skipped)
    return validate(table[table["metric"].isin(list(METRICS))].reset_index(drop=True))
