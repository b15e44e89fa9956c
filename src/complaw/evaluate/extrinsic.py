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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from complaw.errors import ConfigError
from complaw.evaluate.tasks import TASKS, TaskPlan, parse_tasks, plan_tasks, write_tasks
from complaw.models import LoadedModel
from complaw.settings import Settings


@dataclass(frozen=True)
class ExtrinsicConfig(Settings):
    """What to evaluate: task names (see `tasks.TASKS`; "paper" expands to the six), at most
    `limit` documents per task (per MMLU subject; None = all), `batch_size` requests per
    forward pass, and `num_fewshot` examples (0 = zero-shot)."""

    what: ClassVar[str] = "extrinsic setting(s)"
    tasks: tuple[str, ...] = ("arc_easy",)
    limit: int | None = None
    batch_size: int = 8
    num_fewshot: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", parse_tasks(self.tasks))
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"limit must be a positive number of documents, got {self.limit}; "
                              "omit it to use every document")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}; pass e.g. 8")
        if self.num_fewshot < 0:
            raise ConfigError(f"num_fewshot must be >= 0, got {self.num_fewshot}")

    @property
    def label(self) -> str:
        """The dataset label of the mean over tasks (the paper's extrinsic L)."""
        return f"zeroshot({','.join(sorted(self.tasks))})"


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
    loaded: LoadedModel, config: ExtrinsicConfig, data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Zero-shot accuracy of `loaded` on `config.tasks` through lm-eval.

    Returns {"metrics": [one "accuracy" entry per task (see `_entry`), one "accuracy" entry
    with the mean of the chosen metrics (dataset `config.label`), one "runtime" entry with the
    wall time of the whole evaluation in seconds], "seconds": that wall time}. Bad input (unknown
    task, missing files with the hub off) raises before any model call.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    plans = plan_tasks(config.tasks, data_dir)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-run warnings are noise here
    device = next(loaded.model.parameters()).device
    with tempfile.TemporaryDirectory(prefix="complaw-tasks-") as folder:
        local = [p.task.name for p in plans if p.local]
        if local:
            write_tasks(folder, local, data_dir)
        manager = TaskManager(include_path=folder if local else None,
                              include_defaults=not all(p.local for p in plans))
        lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer,
                  batch_size=config.batch_size, device=str(device))
        start = time.perf_counter()
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[p.lm_name for p in plans], task_manager=manager,
            num_fewshot=config.num_fewshot, limit=config.limit, log_samples=False,
        )
        seconds = time.perf_counter() - start
    metrics = [_entry(results, plan, config.limit) for plan in plans]
    mean = sum(m["value"] for m in metrics) / len(metrics)
    metrics.append({"metric": "accuracy", "dataset": config.label, "value": mean,
                    "tasks": list(config.tasks), "limit": config.limit})
    metrics.append({"metric": "runtime", "dataset": config.label, "value": seconds,
                    "unit": "s", "limit": config.limit, "batch_size": config.batch_size})
    return {"metrics": metrics, "seconds": seconds}
