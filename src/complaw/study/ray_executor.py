"""The "ray" executor: stage executions as Ray tasks on a local or remote cluster.

Each node is one task with its stage's resources (`num_cpus`, `num_gpus` when the study's
device is a GPU; the spec's `resources` override them); a node's checkpoint parent is passed as
an ObjectRef, so Ray runs compress before its recoveries and those before their evaluations.
Tasks whose worker died are retried (`max_retries`); errors of the stage itself are not retried
(they become failed records). Workers write checkpoints and records straight into the study
folder, which therefore must be on a filesystem every node sees; only the driver writes the log.
"""

from __future__ import annotations

import contextlib
from typing import Any

from complaw.study.grid import Node
from complaw.study.records import write_record
from complaw.study.runner import (
    EXECUTORS,
    Executor,
    Outcome,
    Report,
    Settings,
    StudyFolder,
    _failed_record,
    run_node,
)
from complaw.study.stages import STAGES


def _options(node: Node, settings: Settings) -> dict[str, Any]:
    custom = settings.resources.get(node.stage)
    if custom is not None:
        gpus = custom["gpus"] if settings.device != "cpu" else 0
        return {"num_cpus": custom["cpus"], "num_gpus": gpus}
    return STAGES.get(node.stage).resources.ray_options(settings.device)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Connects to the cluster at `address` (None: start a local one, or reuse the Ray already
    initialised in this process)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def run(self, todo: list[Node], folder: StudyFolder, settings: Settings,
            report: Report) -> None:
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, num_cpus=self.num_cpus, include_dashboard=False,
                     log_to_driver=False)
        remote = ray.remote(run_node)
        refs: dict[str, Any] = {}
        node_of: dict[Any, Node] = {}
        try:
            for node in todo:
                ref = remote.options(
                    max_retries=settings.max_retries, retry_exceptions=False,
                    name=f"{node.stage}:{node.id}", **_options(node, settings),
                ).remote(str(folder.root), node, settings, refs.get(node.parent))
                refs[node.id] = ref
                node_of[ref] = node
            pending = list(refs.values())
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                node = node_of[ready[0]]
                try:
                    outcome = ray.get(ready[0])
                except Exception as exc:  # the worker died past its retries, or its input did
                    error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                    outcome = Outcome(node.id, node.stage, "failed", error, node.stage)
                    if node.produces == "record":
                        write_record(folder.records,
                                     _failed_record(node, settings, error, node.stage))
                report(node, outcome)
        except KeyboardInterrupt:
            for ref in refs.values():
                with contextlib.suppress(Exception):  # finished tasks cannot be cancelled
                    ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()
