"""One stage execution of a study, in this process or in a worker: `run_node`.

Each experiment is isolated: an exception (OOM included) or a non-finite metric becomes a
failed record holding its error (and the failed stage), and the rest go on.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import traceback
from dataclasses import dataclass, field

from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import Record
from complaw.study.grid import Node
from complaw.study.spec import import_plugins
from complaw.study.stages import STAGES, Resources, StageContext


@dataclass(frozen=True)
class Execution:
    """How to execute (not part of any identity): the device, the data folder, the plugin
    modules to import in every worker, per-stage resources (overriding the stages' own) and
    how often a task whose worker died is retried."""

    device: str = "cpu"
    data_dir: str | None = None
    plugins: tuple[str, ...] = ()
    resources: dict[str, Resources] = field(default_factory=dict)
    max_retries: int = 2

    def resources_of(self, stage: str) -> Resources:
        return self.resources.get(stage) or STAGES.get(stage).resources


@dataclass(frozen=True)
class Outcome:
    """What one stage execution came to."""

    id: str
    stage: str
    status: str  # "ok" | "failed"
    error: str | None = None
    failed_stage: str | None = None
    seconds: float = 0.0


def _context(folder: StudyFolder, node: Node, execution: Execution) -> StageContext:
    source = node.model if node.parent is None else str(folder.checkpoint_path(node.parent))
    output = (folder.checkpoint_path(node.id) if node.produces == "checkpoint"
              else folder.record_path(node.id))
    return StageContext(config=node.step, experiment=node.experiment, source=source,
                        output=output, device=execution.device, dtype=node.dtype,
                        data_dir=execution.data_dir)


def _non_finite(record: Record) -> str | None:
    for metric in record.metrics:
        value = metric.get("value")
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"metric {metric.get('metric')} on {metric.get('dataset')} is {value!r}"
    if not record.metrics:
        return "the stage returned no metrics"
    return None


def write_failed(folder: StudyFolder, node: Node, execution: Execution, error: str,
                 stage: str) -> None:
    """Write the failed record of record node `node` (failed at `stage` with `error`)."""
    record = Record.new("evaluate", node.experiment, execution.device).fail(error, stage)
    record.write(folder.records)


def _free_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_node(root: str, node: Node, execution: Execution, upstream: Outcome | None = None
             ) -> Outcome:
    """Execute one stage (in this process, or in a Ray worker). Never raises for a failure of
    the stage itself: a record node writes a failed record, a checkpoint node returns a failed
    outcome that its dependents turn into failed records."""
    import_plugins(list(execution.plugins))
    folder = StudyFolder(root)
    start = time.perf_counter()
    if upstream is not None and upstream.status != "ok":
        error = upstream.error or "upstream stage failed"
        failed_stage = upstream.failed_stage or upstream.stage
        if node.produces == "record":
            write_failed(folder, node, execution, error, failed_stage)
        return Outcome(node.id, node.stage, "failed", error, failed_stage)
    stage = STAGES.get(node.stage)
    try:
        record = stage.run(_context(folder, node, execution))
        if node.produces == "record":
            problem = _non_finite(record)
            if problem is not None:
                raise FloatingPointError(problem)
            record.id, record.config, record.status, record.error = (
                node.id, node.experiment, "ok", None)
            record.write(folder.records)
    except Exception as exc:  # each experiment is isolated: record the error, go on
        error = f"{type(exc).__name__}: {exc}"
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        if node.produces == "record":
            write_failed(folder, node, execution, error + where, node.stage)
        _free_memory()
        return Outcome(node.id, node.stage, "failed", error, node.stage,
                       time.perf_counter() - start)
    return Outcome(node.id, node.stage, "ok", seconds=time.perf_counter() - start)
