"""Extrinsic evaluation: zero-shot accuracy and task loss through lm-evaluation-harness, offline.

lm-eval scores everything (its HFLM model class around the already-loaded model, its evaluator,
metrics and standard errors); complaw only picks the task sources (`tasks.plan_tasks`), writes
the local task YAMLs into a temporary folder and turns lm-eval's results into metric entries.

The paper's extrinsic L is the mean over tasks of one metric per task (`TASKS[name].metric`):
acc_norm for arc_easy, arc_challenge, hellaswag and piqa; acc for winogrande and mmlu.

*Task loss* (Bhagia et al. 2024, "model ladders"; Heineman et al. 2025, "Signal and Noise") is
the correct choice's negative log-likelihood in bits per byte of its continuation, averaged
over documents: -log p(gold continuation | context) / (ln 2 * UTF-8 bytes of the continuation).
It is read from the same log-likelihood requests lm-eval makes for accuracy (no extra forward
pass). `score="target"` makes only the gold request, one per document: task loss without
accuracy, 2-4x cheaper (a choice is one request).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from complaw.config import ExtrinsicOptions
from complaw.errors import ConfigError
from complaw.evaluate.tasks import TaskPlan, parse_tasks, plan_tasks, write_tasks
from complaw.models import LoadedModel


def mean_label(tasks: Sequence[str]) -> str:
    """The dataset label of the mean over `tasks` (the paper's extrinsic L)."""
    return f"zeroshot({','.join(sorted(tasks))})"


def _n_docs(results: dict[str, Any], plan: TaskPlan) -> int:
    counts = results.get("n-samples", {})
    names = plan.task.subtask_names() if plan.local and plan.task.subjects else [plan.lm_name]
    if not plan.local and plan.task.subjects:
        names = [n for n in counts if n.startswith(f"{plan.task.name}_")]
    return int(sum(counts[n]["effective"] for n in names if n in counts))


def gold_index(task: Any, doc: dict[str, Any]) -> int:
    """The index of the correct choice of `doc`, as lm-eval's multiple-choice scoring reads it
    (ConfigurableTask.process_results): doc_to_text for tasks with one context per choice
    (winogrande), else doc_to_target; a target given as text is looked up among the choices."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, list):
        gold = gold[0]
    if isinstance(gold, str):
        gold = task.doc_to_choice(doc).index(gold)
    return int(gold)


@dataclass(frozen=True)
class DocScore:
    """One document's gold log-likelihood, its continuation's UTF-8 bytes and choice count."""

    loglik: float
    n_bytes: int
    n_choices: int

    @property
    def bits_per_byte(self) -> float:
        return -self.loglik / (math.log(2.0) * self.n_bytes)


def _summary(scores: Sequence[DocScore]) -> dict[str, float]:
    """Task loss (mean bits per byte over documents) with its standard error, and the chance
    accuracy of the documents (the mean of 1 / their number of choices)."""
    bpb = np.array([s.bits_per_byte for s in scores])
    se = float(bpb.std(ddof=1) / math.sqrt(len(bpb))) if len(bpb) > 1 else math.nan
    return {"task_loss": float(bpb.mean()), "task_loss_stderr": se,
            "chance": float(np.mean([1.0 / s.n_choices for s in scores]))}


def _leaf_tasks(task_dict: dict[Any, Any]) -> dict[str, Any]:
    """lm-eval task name -> Task object, group tasks (mmlu) flattened into their subtasks."""
    out: dict[str, Any] = {}
    for key, value in task_dict.items():
        if isinstance(value, dict):
            out.update(_leaf_tasks(value))
        else:
            out[value.config.task if hasattr(value, "config") else str(key)] = value
    return out


def _sample_scores(samples: Sequence[dict[str, Any]], task: Any) -> list[DocScore]:
    """The gold scores of lm-eval's logged samples (every choice was requested)."""
    out = []
    for sample in samples:
        gold = gold_index(task, sample["doc"])
        loglik = float(sample["resps"][gold][0][0])
        continuation = sample["arguments"][gold][1]
        out.append(DocScore(loglik, len(continuation.encode("utf-8")),
                            len(sample["arguments"])))
    return out


def _target_scores(lm: Any, task: Any, limit: int | None) -> list[DocScore]:
    """Gold scores from the gold request alone, one per document (`score="target"`)."""
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    gold = [i for i in task.instances if i.idx == gold_index(task, i.doc)]
    choices = {i.doc_id: len(task.doc_to_choice(i.doc)) for i in gold}
    results = lm.loglikelihood(gold)
    return [DocScore(float(ll), len(i.args[1].encode("utf-8")), choices[i.doc_id])
            for i, (ll, _) in zip(gold, results, strict=True)]


def _entries(plan: TaskPlan, scores: list[DocScore], limit: int | None,
             results: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The metric entries of one task: its accuracy (when every choice was scored) and its
    task loss."""
    summary = _summary(scores)
    common = {"dataset": plan.task.name, "n_docs": len(scores), "limit": limit,
              "source": plan.source, "chance": summary["chance"]}
    loss = {"metric": "task_loss", "value": summary["task_loss"], "unit": "bits/byte",
            "stderr": summary["task_loss_stderr"], **common}
    if results is None:
        return [loss]
    scores_ = results["results"][plan.lm_name]
    metric = plan.task.metric

    def value(key: str) -> float | None:
        v = scores_.get(f"{key},none")
        return float(v) if isinstance(v, int | float) else None

    accuracy: dict[str, Any] = {"metric": "accuracy", "value": value(metric), "chosen": metric,
                                "stderr": value(f"{metric}_stderr")}
    for key in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr"):
        accuracy[key] = value(key)
    accuracy.update(common, n_docs=_n_docs(results, plan),
                    task_loss=summary["task_loss"],
                    task_loss_stderr=summary["task_loss_stderr"])
    return [accuracy, loss]


SCORES = ("choices", "target")
"""What a zero-shot evaluation requests: every choice (accuracy and task loss), or the gold
continuation only (task loss)."""


def evaluate_zero_shot(
    loaded: LoadedModel, tasks: Sequence[str], limit: int | None = None,
    options: ExtrinsicOptions | None = None, data_dir: str | Path | None = None,
    score: str = "choices",
) -> dict[str, Any]:
    """Zero-shot accuracy and task loss of `loaded` on `tasks` (see `tasks.TASKS`; "paper"
    expands to the six) through lm-eval, at most `limit` documents per task (per MMLU subject;
    None = all), with lm-eval's `options` (default: ExtrinsicOptions()). `score` is one of
    `SCORES`: "target" requests only each document's gold continuation (task loss only).

    Returns {"metrics": [per task: an "accuracy" entry (acc, acc_norm and their standard
    errors, the number of documents, the chance level, the task loss; not with
    score="target") and a "task_loss" entry (bits per byte, its standard error); with
    score="choices" one "accuracy" entry with the mean of the chosen metrics (dataset
    `mean_label(tasks)`); one "runtime" entry with the wall time of the whole evaluation in
    seconds], "seconds": that wall time}. Bad input (unknown task, missing files with the hub
    off) raises before any model call.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    if score not in SCORES:
        raise ConfigError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    tasks, options = parse_tasks(tasks), options or ExtrinsicOptions()
    plans = plan_tasks(tasks, data_dir)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-run warnings are noise here
    device = next(loaded.model.parameters()).device
    metrics: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="complaw-tasks-") as folder:
        local = [p.task.name for p in plans if p.local]
        if local:
            write_tasks(folder, local, data_dir)
        manager = TaskManager(include_path=folder if local else None,
                              include_defaults=not all(p.local for p in plans))
        lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer,
                  batch_size=options.batch_size, device=str(device))
        start = time.perf_counter()
        names = [p.lm_name for p in plans]
        leaves = _leaf_tasks(get_task_dict(names, manager))
        results = None
        if score == "choices":
            results = lm_eval.simple_evaluate(
                model=lm, tasks=names, task_manager=manager,
                num_fewshot=options.num_fewshot, limit=limit, log_samples=True,
            )
        for plan in plans:
            subtasks = plan.task.subtask_names() if plan.local and plan.task.subjects else [
                n for n in leaves if n == plan.lm_name or n.startswith(f"{plan.lm_name}_")]
            scores: list[DocScore] = []
            for name in subtasks:
                task = leaves[name]
                if results is not None:
                    scores += _sample_scores(results["samples"][name], task)
                else:
                    if options.num_fewshot:
                        task.set_config(key="num_fewshot", value=options.num_fewshot)
                    scores += _target_scores(lm, task, limit)
            metrics += _entries(plan, scores, limit, results)
        seconds = time.perf_counter() - start
    label = mean_label(tasks)
    accuracies = [m["value"] for m in metrics if m["metric"] == "accuracy"]
    if accuracies:
        metrics.append({"metric": "accuracy", "dataset": label,
                        "value": sum(accuracies) / len(accuracies),
                        "tasks": list(tasks), "limit": limit})
    metrics.append({"metric": "runtime", "dataset": label, "value": seconds,
                    "unit": "s", "limit": limit, "batch_size": options.batch_size,
                    "score": score})
    return {"metrics": metrics, "seconds": seconds}
