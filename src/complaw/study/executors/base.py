"""The executor kind: what runs a study's stage executions (see complaw.study.executors)."""

from __future__ import annotations

from collections.abc import Callable

from complaw.errors import ConfigError
from complaw.experiment.folder import StudyFolder
from complaw.registry import Registry
from complaw.study.execution import Execution, Outcome
from complaw.study.grid import Node

OnOutcome = Callable[[Node, Outcome], None]
"""What an executor calls with each node's outcome as it finishes."""


class Executor:
    """Runs the nodes to do (parents before children) and reports each outcome."""

    def run(self, todo: list[Node], folder: StudyFolder, execution: Execution,
            report: OnOutcome) -> None:
        raise NotImplementedError


EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor", ConfigError)
