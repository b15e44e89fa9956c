"""The "local" executor: one stage execution at a time, in this process."""

from __future__ import annotations

from complaw.experiment.folder import StudyFolder
from complaw.study.execution import Execution, Outcome, run_node
from complaw.study.executors.base import EXECUTORS, Executor, OnOutcome
from complaw.study.grid import Node


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """One stage at a time in this process."""

    def run(self, todo: list[Node], folder: StudyFolder, execution: Execution,
            report: OnOutcome) -> None:
        outcomes: dict[str, Outcome] = {}
        for node in todo:
            outcome = run_node(str(folder.root), node, execution, outcomes.get(node.parent))
            outcomes[node.id] = outcome
            report(node, outcome)
