"""The "ray" executor: stage executions as Ray tasks on a local or remote cluster.

Each node is one task with its stage's resources (`num_cpus`, `num_gpus` when the study's
device is a GPU; the spec's `resources` override them); a node's checkpoint parent is passed as
an ObjectRef, so Ray runs compress before its recoveries and those before their evaluations.
Tasks whose worker died are retried (`max_retries`); errors of the stage itself are not retried
(they become failed records). Workers write checkpoints and records straight into the study
folder, which therefore must be on a filesystem every node sees; only the driver writes the log.
Ray is an optional dependency (`pip install 'complaw[ray]'`; `make install` installs it).
"""

from __future__ import annotations

import contextlib
from typing import Any

from complaw.errors import ConfigError
from complaw.experiment.folder import StudyFolder
from complaw.study.execution import Execution, Outcome, run_node, write_failed
from complaw.study.executors.base import EXECUTORS, Executor, OnOutcome
from complaw.study.grid import Node


def _ray() -> Any:
    """The ray module, or a ConfigError naming how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray, an optional dependency: "
                          "pip install 'complaw[ray]' (make install installs it)") from None
    return ray


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Connects to the cluster at `address` (None: start a local one, or reuse the Ray already
    initialised in this process)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        _ray()  # fails here, before the study starts, when Ray is not installed
        self.address = address
        self.num_cpus = num_cpus

    def run(self, todo: list[Node], folder: StudyFolder, execution: Execution,
            report: OnOutcome) -> None:
        ray = _ray()
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, num_cpus=self.num_cpus, include_dashboard=False,
                     log_to_driver=False)
        remote = ray.remote(run_node)
        refs: dict[str, Any] = {}
        node_of: dict[Any, Node] = {}
        try:
            for node in todo:
                resources = execution.resources_of(node.stage).ray_options(execution.device)
                ref = remote.options(
                    max_retries=execution.max_retries, retry_exceptions=False,
                    name=f"{node.stage}:{node.id}", **resources,
                ).remote(str(folder.root), node, execution, refs.get(node.parent))
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
                        write_failed(folder, node, execution, error, node.stage)
                report(node, outcome)
        except KeyboardInterrupt:
            for ref in refs.values():
                with contextlib.suppress(Exception):  # finished tasks cannot be cancelled
                    ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()
