"""Synthetic study folders for the report tests: record files drawn from known laws.

Kept out of a conftest.py so that its name cannot shadow another test folder's helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from complaw.experiment.records import config_id, law_table

TASKS = ("arc_easy", "piqa")
MEAN = f"zeroshot({','.join(TASKS)})"
DATASETS = ("wikitext2:test", "ptb:test", "alpaca:test")
RATIOS = (0.1, 0.3, 0.5, 0.7, 0.9)
RFT = (None, ("alpaca:train", 1000), ("alpaca:train", 4000))
CALIBRATION = {"prunenet": None, "slicegpt": "wikitext2:train"}
# calibration-free truths (Table 1 / the worked example); slicegpt has its own
LOSS_LAW = {"prunenet": (0.63, 1.72, 1.16), "slicegpt": (0.70, 1.40, 0.24)}
ACC_LAW = {"prunenet": (0.98, -1.18, -0.14), "slicegpt": (1.25, -0.91, -0.06)}
RUNTIME_BETA = -1.5
# two-step truths: task loss (bits/byte) = l0 + A r^b (1 + D/Dl)^-c, accuracy = chance +
# (top - chance) sigmoid(-k (l - mid)) per task
TASK_LOSS = {"arc_easy": 1.1, "piqa": 0.9}
TASK_LOSS_LAW = {"prunenet": (2.0, 2.0, 500.0, 0.4), "slicegpt": (1.5, 1.5, 800.0, 0.3)}
LINK = {"arc_easy": (0.25, 0.9, 4.0, 1.6), "piqa": (0.5, 0.95, 5.0, 1.4)}  # chance, top, k, mid
PHASES = ("prefill", "decode")
MODELS: dict[str, dict[str, Any]] = {
    "tiny-a": {"loss": (3.2, 3.6, 2.4), "acc": (0.55, 0.66), "runtime": 120.0, "params": 135e6,
               "tps": (900.0, 40.0), "baseline_speed": False},
    "tiny-b": {"loss": (2.7, 3.1, 2.0), "acc": (0.63, 0.72), "runtime": 300.0, "params": 360e6,
               "tps": (400.0, 18.0), "baseline_speed": True},
}


def law(L0: float, r: float, D: float, coefs: tuple[float, float, float]) -> float:
    a, b, g = coefs
    return L0**a * (1 + r) ** b * (1 + 1 / (D + 1)) ** g


def link(task: str, loss: float) -> float:
    chance, top, k, mid = LINK[task]
    return chance + (top - chance) / (1.0 + np.exp(k * (loss - mid)))


def _record(kind: str, config: dict, metrics: list[dict], status: str = "ok",
            params: float = 1.0) -> dict:
    return {
        "id": config_id(config), "kind": kind, "created": "2026-01-01T00:00:00+00:00",
        "status": status, "error": None if status == "ok" else "RuntimeError: out of memory",
        "config": config,
        "environment": {"python": "3.11.2", "device": "cpu", "versions": {"complaw": "0.1.0"}},
        "params": {"total": params}, "metrics": metrics,
        "timings": {"load": 0.5, "evaluate": 2.0},
    }


def make_study(
    folder: Path,
    methods: tuple[str, ...] = ("prunenet", "slicegpt"),
    rft: tuple = RFT,
    zeroshot: bool = True,
    speed: bool = True,
    noise: float = 0.01,
    seed: int = 0,
    runner_files: bool = True,
    models: tuple[str, ...] = tuple(MODELS),
    datasets: tuple[str, ...] = DATASETS,
    task_loss: bool = False,
) -> Path:
    """Write a study folder (records under ``folder/records``) and return ``folder``. With
    ``task_loss``, each task's record also carries its task loss, and its accuracy follows
    from it through the task's link (`TASK_LOSS_LAW`, `LINK`) instead of `ACC_LAW`; the mean
    row (the paper's extrinsic L) still follows `ACC_LAW`."""
    rng = np.random.default_rng(seed)
    records = folder / "records"
    records.mkdir(parents=True, exist_ok=True)

    def jitter() -> float:
        return float(np.exp(rng.normal(0.0, noise)))

    out: list[dict] = []
    for model in models:
        m = MODELS[model]
        variants: list[tuple[dict | None, dict | None, str]] = [(None, None, "prunenet")]
        for method in methods:
            for r in RATIOS:
                comp = {"method": method, "ratio": r, "calibration": CALIBRATION[method],
                        "seed": 0, "options": {}}
                for rec in rft:
                    recovery = None if rec is None else {
                        "dataset": rec[0], "samples": None, "seq_len": 1024, "seed": 0,
                        "options": {}, "tokens": rec[1]}
                    variants.append((comp, recovery, method))
        for comp, recovery, method in variants:
            r = comp["ratio"] if comp else 0.0
            D = recovery["tokens"] if recovery else 0
            base = comp is None and recovery is None

            def value(L0, coefs, r=r, D=D, base=base):
                return L0 if base else law(L0, r, D, coefs) * jitter()

            common = {"model": model, "dtype": "float32", "compression": comp,
                      "recovery": recovery}
            size = m["params"] * (1 - 0.8 * r)
            for dataset, L0 in zip(DATASETS, m["loss"], strict=True):
                if dataset not in datasets:
                    continue
                cfg = {**common, "eval": {"kind": "intrinsic", "data": dataset, "seq_len": 128}}
                L = value(L0, LOSS_LAW[method])
                out.append(_record("evaluate", cfg, [{"metric": "loss", "dataset": dataset,
                                                      "value": L, "perplexity": float(np.exp(L))}],
                                   params=size))
            if zeroshot:
                cfg = {**common, "eval": {"kind": "extrinsic", "tasks": list(TASKS), "limit": 50,
                                          "options": {}}}
                accs = [value(L0, ACC_LAW[method]) for L0 in m["acc"]]
                runtime = m["runtime"] * (1.0 if base else (1 + r) ** RUNTIME_BETA * jitter())
                losses = []
                if task_loss:
                    A, b, Dl, c = TASK_LOSS_LAW[method]
                    shift = 0.1 * list(MODELS).index(model)  # each model its own l0
                    losses = [(TASK_LOSS[t] + shift + A * r**b * (1 + D / Dl) ** -c)
                              * (1.0 if base else jitter()) for t in TASKS]
                tasks = [link(t, v) for t, v in zip(TASKS, losses, strict=False)] or accs
                metrics = [{"metric": "accuracy", "dataset": t, "value": v, "acc": v,
                            "acc_norm": v,
                            **({"stderr": 0.02, "chance": LINK[t][0]} if task_loss else {})}
                           for t, v in zip(TASKS, tasks, strict=True)]
                metrics += [{"metric": "task_loss", "dataset": t, "value": v, "stderr": 0.01,
                             "chance": LINK[t][0]} for t, v in zip(TASKS, losses, strict=False)]
                metrics.append({"metric": "accuracy", "dataset": MEAN,
                                "value": float(np.mean(accs))})
                metrics.append({"metric": "runtime", "dataset": MEAN, "value": runtime})
                out.append(_record("evaluate", cfg, metrics, params=size))
            if speed:  # as complaw.evaluate.speed.speed_metrics writes them
                cfg = {**common, "eval": {"kind": "speed", "device": "cpu",
                                          "options": {"prompt_len": 64, "new_tokens": 16}}}
                factor = 1.0 if base else (1 + r) ** -RUNTIME_BETA * jitter()
                metrics = [{"metric": "throughput", "dataset": phase, "value": tps * factor,
                            "unit": "tokens/s"} for phase, tps in zip(PHASES, m["tps"],
                                                                       strict=True)]
                if not base and m["baseline_speed"]:  # measured interleaved with the base
                    metrics += [{"metric": "speedup", "dataset": phase, "value": factor * 1.01,
                                 "ideal": 1 / (1 - 0.8 * r)} for phase in PHASES]
                out.append(_record("evaluate", cfg, metrics, params=size))
    failed_cfg = {"model": "tiny-a", "dtype": "float32", "eval": {"kind": "intrinsic",
                  "data": "wikitext2:test", "seq_len": 4096}, "compression": None,
                  "recovery": None}
    failed = _record("evaluate", failed_cfg, [], status="failed")
    failed["failed_stage"] = "intrinsic"
    out.append(failed)
    for rec in out:
        (records / f"{rec['id']}.json").write_text(json.dumps(rec), encoding="utf-8")
    if runner_files:  # what `complaw run` writes beside the records
        spec = {"name": "synthetic", "models": list(MODELS), "ratios": list(RATIOS),
                "methods": [{"name": m} for m in methods]}
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), "utf-8")
        log = [{"stage": stage, "status": status, "seconds": sec, "id": f"x{i}"}
               for i, (stage, status, sec) in enumerate([
                   ("compress", "ok", 2.5), ("compress", "ok", 3.5), ("recover", "ok", 40.0),
                   ("intrinsic", "ok", 10.0), ("intrinsic", "failed", 1.0)])]
        lines = [json.dumps(e) for e in log] + ["{not json"]
        (folder / "log.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
        meta = {"timings": {"report": 1.25}, "done": len(out) - 1, "failed": 1}
        (folder / "study.json").write_text(json.dumps(meta), encoding="utf-8")
        curve = [{"step": k, "experiments": 4 * k, "cost_fraction": 0.1 * k,
                  "adaptive_mape_pct": 12.0 / k, "median_mape_pct": 14.0 / k,
                  "p10": 13.0 / k, "p90": 16.0 / k, "seeds": 10} for k in (1, 2, 3)]
        # a prior study: the same grid measured on two other models (the loss 2 % apart)
        rows = law_table(folder)
        rows = rows[rows["metric"] == "loss"]
        prior = pd.concat([rows.assign(model=f"prior-{i}", L=rows["L"] * (1 + 0.02 * i))
                           for i in (1, 2)])
        prior.to_csv(folder / "prior.csv", index=False)
        settings = {"prior": str(folder / "prior.csv"), "metric": "loss"}
        (folder / "design.json").write_text(
            json.dumps({"settings": settings, "form": "eq1", "curve": curve}), encoding="utf-8")
    return folder
