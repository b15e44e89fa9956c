"""What a report reads from a study folder (complaw.experiment.folder.StudyFolder): the records
(through `Record.from_dict`), the law table, observations, the spec and the runner's log.

A study folder is either the folder of ``complaw run`` or a plain folder of record files.
Nothing here fails on a partial study: missing parts are empty frames, and rows that no law can
use (unknown metric, L <= 0, ...) are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from complaw.config import Experiment
from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import Record, law_table, read_records
from complaw.laws.metrics import METRICS, get_metric, stage_metric
from complaw.laws.table import COLUMNS, validate

MEAN_PREFIX = "zeroshot"
"""Dataset names of the mean zero-shot accuracy start with this (``zeroshot(piqa,arc_easy)``)."""

OBS_COLUMNS = [
    "record", "model", "method", "calibration", "rft", "D", "r", "dataset", "metric", "L",
    "base", "ideal",
]
SPEED_COLUMNS = ["model", "method", "calibration", "r", "D", "phase", "speedup", "ideal", "source"]


class Skip(Exception):
    """A section cannot be drawn from this study; the message says what is missing."""


@dataclass
class Study:
    """Everything a report is made of, read once from a study folder."""

    folder: Path
    records_dir: Path
    records: list[Record]
    """Every readable record of the study."""
    problems: list[tuple[str, str]]
    laws: pd.DataFrame
    """The validated law table (`law_table`): one row per metric of a compressed model."""
    dropped: dict[str, int]
    """Law-table rows left out because no law can use them, by reason (see `usable_rows`)."""
    unmatched: int
    """Metrics of compressed models without a base record (no L0)."""
    obs: pd.DataFrame
    """Every measured value of every ok record (columns `OBS_COLUMNS`), base models included."""
    speed: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Speedups of compressed models per phase (`SPEED_COLUMNS`)."""
    spec: str | None = None
    """The study's spec as text (spec.yaml), None when absent."""
    log: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The runner's log.jsonl: one row per stage execution (stage, status, seconds, ...)."""
    @property
    def n_ok(self) -> int:
        return sum(r.ok for r in self.records)

    @property
    def n_failed(self) -> int:
        return sum(r.status == "failed" for r in self.records)


def read_log(folder: StudyFolder) -> pd.DataFrame:
    """The runner's log as a frame (empty when absent)."""
    rows = folder.read_log()
    columns = ["stage", "status", "seconds"]
    columns += sorted({k for r in rows for k in r} - set(columns))
    return pd.DataFrame(rows, columns=columns)


def usable_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of a raw law table that a law can be fitted on, validated; and how many rows
    were left out, by reason.

    Left out: unregistered metrics (e.g. throughput), missing or non-finite numbers, L or
    L0 <= 0 (e.g. an accuracy of 0 on a small subset), r outside [0, 1), D < 0 and values above
    their metric's scale (accuracies above 1).
    """
    if df.empty:
        return validate(pd.DataFrame(columns=list(COLUMNS))), {}
    num = {c: pd.to_numeric(df[c], errors="coerce") for c in ("L", "L0", "r", "D")}
    metric = df["metric"].astype(str).str.lower()
    known = metric.isin(list(METRICS))
    finite = pd.Series(True, index=df.index)
    for values in num.values():
        finite &= np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    ok = finite & (num["L"] > 0) & (num["L0"] > 0) & (num["r"] >= 0) & (num["r"] < 1)
    upper = metric.map(lambda m: get_metric(m).scale.upper if m in METRICS else np.inf)
    ok &= (num["D"] >= 0) & (num["L"] <= upper) & (num["L0"] <= upper)
    dropped = {f"metric {m} (laws model {', '.join(METRICS)})": int(n)
               for m, n in metric[~known].value_counts().sort_index().items()}
    bad = int((known & ~ok).sum())
    if bad:
        dropped["values outside a law's domain (L or L0 <= 0, missing, r not in [0, 1))"] = bad
    return validate(df[known & ok].reset_index(drop=True)), dropped


def _variant(config: Experiment) -> dict[str, Any]:
    comp, rec = config.compression, config.recovery
    return {
        "model": config.model,
        "method": comp.method if comp else "none",
        "calibration": (comp.calibration if comp else None) or "none",
        "rft": rec.dataset if rec and rec.tokens else "none",
        "D": float(rec.tokens or 0) if rec else 0.0,
        "r": float(comp.ratio) if comp else 0.0,
        "base": config.is_base,
    }


def observations(records: list[Record]) -> pd.DataFrame:
    """One row per numeric metric entry of every ok record (`OBS_COLUMNS`; any metric)."""
    rows = []
    for rec in records:
        if not rec.ok:
            continue
        variant = _variant(rec.config)
        for m in rec.metrics:
            value = m.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                rows.append({
                    "record": rec.id, **variant, "dataset": str(m.get("dataset")),
                    "metric": str(m.get("metric")), "L": float(value), "ideal": m.get("ideal"),
                })
    return pd.DataFrame(rows, columns=OBS_COLUMNS)


def speedups(obs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Speedup of each compressed model per phase (`SPEED_COLUMNS`).

    ``speedup`` entries (measured interleaved with the base model; dataset = the phase, with the
    FLOP-proportional ``ideal``) are taken as they are; otherwise the ratio of ``throughput``
    (tokens/s) to the base model's, paired as the law table pairs L with L0.
    """
    keys = ["model", "method", "calibration", "r", "D", "phase"]
    direct = obs[(obs["metric"] == "speedup") & ~obs["base"].astype(bool)]
    direct = direct.rename(columns={"dataset": "phase", "L": "speedup"})
    direct = direct.assign(source="measured against the base")
    tput = raw[raw["metric"] == "throughput"]
    ratio = tput[["model", "method", "calibration"]].assign(
        r=tput["r"].astype(float), D=tput["D"].astype(float), phase=tput["dataset"],
        speedup=tput["L"] / tput["L0"], ideal=np.nan, source="throughput / base throughput",
    )
    if len(direct):
        have = set(map(tuple, direct[keys].astype(str).to_numpy()))
        ratio = ratio[[tuple(k) not in have for k in ratio[keys].astype(str).to_numpy()]]
    parts = [p[SPEED_COLUMNS] for p in (direct, ratio) if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SPEED_COLUMNS)


def load_study(path: str | Path) -> Study:
    """Read a study folder (or a folder of records) for a report."""
    folder = StudyFolder(path).require()
    found = read_records(folder.root)
    raw = law_table(folder.root)
    laws, dropped = usable_rows(raw)
    obs = observations(found.records)
    spec = folder.spec_text()
    return Study(
        folder=folder.root,
        records_dir=folder.records,
        records=found.records,
        problems=found.problems,
        laws=laws,
        dropped=dropped,
        unmatched=int(raw.attrs.get("unmatched", 0)),
        obs=obs,
        speed=speedups(obs, raw),
        spec=None if spec is None else spec.rstrip(),
        log=read_log(folder),
    )


def is_mean(dataset: pd.Series) -> pd.Series:
    """True where a dataset name is a mean over zero-shot tasks."""
    return dataset.astype(str).str.startswith(MEAN_PREFIX)


def intrinsic(df: pd.DataFrame) -> pd.DataFrame:
    """The intrinsic L's rows (loss)."""
    return df[df["metric"] == stage_metric("intrinsic").name]


def extrinsic(df: pd.DataFrame) -> pd.DataFrame:
    """The extrinsic L: the mean zero-shot accuracy rows, or (when a study has no mean) every
    accuracy row."""
    acc = df[df["metric"] == stage_metric("extrinsic").name]
    mean = acc[is_mean(acc["dataset"])]
    return mean if len(mean) else acc


def calibration_free(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of calibration-free compression (the paper's main subset)."""
    return df[df["calibration"] == "none"]


def calibrated(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of calibration-based compression."""
    return df[df["calibration"] != "none"]


def main_subset(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows the paper's Tables 1, 2, 4 and 6 use: calibration-free ones when the study has
    them, else all; and a phrase saying which."""
    free = calibration_free(df)
    if len(free) and len(free) < len(df):
        return free, "calibration-free rows (as in the paper)"
    if len(free):
        return df, "all rows (all calibration-free)"
    return df, "all rows (the study has no calibration-free method)"
