"""Extrinsic evaluation: zero-shot accuracy through lm-evaluation-harness, offline.

lm-eval scores everything (its HFLM model class around the already-loaded model, its evaluator,
metrics and standard errors); complaw only picks the task sources (`tasks.plan_tasks`), writes
the local task YAMLs into a temporary folder and turns lm-eval's results into metric entries.

The paper's extrinsic L is the mean over tasks of one metric per task (`TASKS[name].metric`):
acc_norm for arc_easy, arc_challenge, hellaswag and piqa; acc for winogrande and mmlu.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from complaw.config import ExtrinsicOptions
from complaw.evaluate.tasks import TASKS, TaskPlan, parse_tasks, plan_tasks, write_tasks
from complaw.models import LoadedModel


def mean_label(tasks: Sequence[str]) -> str:
    """The dataset label of the mean over `tasks` (the paper's extrinsic L)."""
    return f"zeroshot({','.join(sorted(tasks))})"


def chosen_metric(task: str) -> str:
    """The one metric of `task` that enters the extrinsic L."""
    return TASKS.get(task).metric


def _n_docs(results: dict[str, Any], plan: TaskPlan) -> int:
    counts = results.get("n-samples", {})
    names = plan.task.subtask_names() if plan.local and plan.task.subjects else [plan.lm_name]
    if not plan.local and plan.task.subjects:
        names = [n for n in counts if n.startswith(f"{plan.task.name}_")]
    return int(sum(counts[n]["effective"] for n in names if n in counts))


def _entry(results: dict[str, Any], plan: TaskPlan, limit: int | None) -> dict[str, Any]:
    scores = results["results"][plan.lm_name]
    metric = plan.task.metric

    def value(key: str) -> float | None:
        v = scores.get(f"{key},none")
        return float(v) if isinstance(v, int | float) else None

    entry: dict[str, Any] = {"metric": "accuracy", "dataset": plan.task.name,
                             "value": value(metric), "chosen": metric}
    for key in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr"):
        entry[key] = value(key)
    entry.update(n_docs=_n_docs(results, plan), limit=limit, source=plan.source)
    return entry


def evaluate_zero_shot(
    loaded: LoadedModel, tasks: Sequence[str], limit: int | None = None,
    options: ExtrinsicOptions | None = None, data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Zero-shot accuracy of `loaded` on `tasks` (see `tasks.TASKS`; "paper" expands to the six)
    through lm-eval, at most `limit` documents per task (per MMLU subject; None = all), with
    lm-eval's `options` (default: ExtrinsicOptions()).

    Returns {"metrics": [one "accuracy" entry per task (see `_entry`), one "accuracy" entry
    with the mean of the chosen metrics (dataset `mean_label(tasks)`), one "runtime" entry with
    the wall time of the whole evaluation in seconds], "seconds": that wall time}. Bad input
    (unknown task, missing files with the hub off) raises before any model call.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks, options = parse_tasks(tasks), options or ExtrinsicOptions()
    plans = plan_tasks(tasks, data_dir)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-run warnings are noise here
    device = next(loaded.model.parameters()).device
    with tempfile.TemporaryDirectory(prefix="complaw-tasks-") as folder:
        local = [p.task.name for p in plans if p.local]
        if local:
            write_tasks(folder, local, data_dir)
        manager = TaskManager(include_path=folder if local else None,
                              include_defaults=not all(p.local for p in plans))
        lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer,
                  batch_size=options.batch_size, device=str(device))
        start = time.perf_counter()
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[p.lm_name for p in plans], task_manager=manager,
            num_fewshot=options.num_fewshot, limit=limit, log_samples=False,
        )
        seconds = time.perf_counter() - start
    metrics = [_entry(results, plan, limit) for plan in plans]
    mean = sum(m["value"] for m in metrics) / len(metrics)
    label = mean_label(tasks)
    metrics.append({"metric": "accuracy", "dataset": label, "value": mean,
                    "tasks": list(tasks), "limit": limit})
    metrics.append({"metric": "runtime", "dataset": label, "value": seconds,
                    "unit": "s", "limit": limit, "batch_size": options.batch_size})
    return {"metrics": metrics, "seconds": seconds}
