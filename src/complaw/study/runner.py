"""Run a study: execute what is missing in a study folder (complaw.experiment.folder), with a
registered executor (complaw.study.executors: locally or on Ray).

A record with status "ok" is done; "failed" is skipped unless `retry_failed`; a record or
checkpoint that cannot be read (truncated, corrupt, wrong id) is reported and recomputed. A
folder written before execution-only settings left ids keeps working: its records are found by
the ids their configs have now (`StudyRecords`), its checkpoints by their earlier ids, and a run
renames those checkpoints (and a record it recomputes) to today's ids.
Each experiment is isolated (complaw.study.execution). A checkpoint is removed as soon as every
experiment that reads it is done ok (a grid of 14B models would otherwise fill any disk), and
the rest that no pending or failed experiment needs at the end, unless `keep_checkpoints`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from complaw.errors import ConfigError, RecordError
from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import Record, read_record
from complaw.study.execution import Execution, Outcome
from complaw.study.executors import EXECUTORS, OnOutcome
from complaw.study.grid import Grid, Node, expand
from complaw.study.spec import Spec, parse_spec
from complaw.study.stages import STAGES, Resources


class StudyRecords:
    """The records of a study's experiments, by id: the file named by the id, or else a file
    written under an earlier id scheme (before execution-only settings left ids), which is
    named by its old id and found by the id recomputed from the config it holds. The files not
    named by an experiment of `grid` are read once, here."""

    def __init__(self, folder: StudyFolder, grid: Grid) -> None:
        self.folder = folder
        ids = {node.id for node in grid.records()}
        self.earlier: dict[str, Path] = {}
        for path in sorted(folder.records.glob("*.json")):
            if path.stem not in ids:
                with contextlib.suppress(RecordError):  # not an experiment's: not ours to judge
                    record = read_record(path)
                    if record.id not in self.earlier or record.ok:
                        self.earlier[record.id] = path

    def get(self, ident: str) -> Record | None:
        """The record of experiment `ident`, None if absent; RecordError if it is damaged or is
        another experiment's."""
        path = self.folder.record_path(ident)
        if not path.is_file():
            path = self.earlier.get(ident)
            if path is None:
                return None
        record = read_record(path)
        if record.id != ident:
            raise RecordError(f"{path} is not the record of experiment {ident}")
        return record

    def adopt(self, ident: str) -> None:
        """Give an earlier-named record of `ident` its id as name (before it is recomputed, so
        that the new record replaces it)."""
        path = self.earlier.pop(ident, None)
        if path is not None and not self.folder.record_path(ident).exists():
            os.replace(path, self.folder.record_path(ident))


def checkpoint_ok(folder: StudyFolder, node: Node) -> bool:
    """Whether the checkpoint of `node` is there and whole (RecordError if damaged); an older
    folder may hold it under its earlier id."""
    for ident in (node.id, node.earlier):
        path = folder.checkpoint_path(ident)
        if path.is_dir():
            STAGES.get(node.stage).validate(path)
            return True
    return False


def adopt_checkpoints(grid: Grid, folder: StudyFolder) -> None:
    """Rename the checkpoints an older complaw wrote under their earlier ids to their ids."""
    for node in grid.checkpoints():
        path = folder.checkpoint_path(node.id)
        if not path.exists() and folder.checkpoint_path(node.earlier).is_dir():
            os.replace(folder.checkpoint_path(node.earlier), path)


def save_spec(folder: StudyFolder, spec: Spec) -> None:
    folder.write_spec(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))


def saved_spec(folder: StudyFolder) -> Spec:
    text = folder.spec_text()
    if text is None:
        raise ConfigError(f"{folder.root} is not a study folder ({folder.SPEC} is missing); "
                          "run `complaw run SPEC --out FOLDER` first")
    return parse_spec(yaml.safe_load(text), str(folder.spec))


@dataclass
class Todo:
    """What a run will do: the nodes to execute (parents before children: the pending, damaged
    and, with retry_failed, failed records, and the checkpoints they need that are not whole on
    disk), and the damage found on the way."""

    nodes: list[Node]
    problems: list[str]

    def stage_totals(self) -> Counter:
        return Counter(n.stage for n in self.nodes)


def todo(grid: Grid, records: StudyRecords, retry_failed: bool = False,
         select: set[str] | None = None) -> Todo:
    """What to run for every record node (only those in ``select``, when given)."""
    folder = records.folder
    problems: list[str] = []
    needed: set[str] = set()
    for node in grid.records():
        if select is not None and node.id not in select:
            continue
        try:
            record = records.get(node.id)
        except RecordError as exc:
            problems.append(f"{exc}; recomputing it")
            record = None
        if record is None or (not record.ok and retry_failed):
            records.adopt(node.id)
            parent: str | None = node.id
            while parent is not None and parent not in needed:
                needed.add(parent)
                parent = grid.nodes[parent].parent
    nodes = []
    for node in grid.nodes.values():
        if node.id not in needed:
            continue
        if node.produces == "checkpoint":
            try:
                if checkpoint_ok(folder, node):
                    continue
            except RecordError as exc:
                problems.append(f"{exc}; recomputing it")
                shutil.rmtree(folder.checkpoint_path(node.id), ignore_errors=True)
        nodes.append(node)
    return Todo(nodes, problems)


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    ran: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    pruned: int = 0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)  # (experiment id, error)
    refused: Counter = field(default_factory=Counter)  # Grid.refused: left out of the grid


@contextlib.contextmanager
def _bars(totals: Counter, experiments: int) -> Iterator[OnOutcome]:
    """An overall bar (experiments) and one per stage; yields the function that advances them."""
    from complaw.progress import progress_bars

    with progress_bars(transient=False) as progress:
        overall = progress.add_task("experiments", total=experiments)
        tasks = {stage: progress.add_task(f"  {stage}", total=n) for stage, n in totals.items()}

        def advance(node: Node, outcome: Outcome) -> None:
            progress.advance(tasks[node.stage])
            if node.produces == "record":
                progress.advance(overall)

        yield advance


def _prune_done(records: StudyRecords, ckpt: str, consumers: list[str]) -> bool:
    """Remove checkpoint ``ckpt`` if every one of its ``consumers`` is done ok."""
    path = records.folder.checkpoint_path(ckpt)
    if not path.is_dir():
        return False
    for ident in consumers:
        try:
            record = records.get(ident)
        except RecordError:
            return False
        if record is None or not record.ok:
            return False
    shutil.rmtree(path)
    return True


def _consumers(grid: Grid, select: set[str] | None) -> dict[str, list[str]]:
    return {ckpt: [i for i in ids if select is None or i in select]
            for ckpt, ids in grid.consumers().items()}


def prune(grid: Grid, folder: StudyFolder, select: set[str] | None = None) -> int:
    """Remove checkpoints whose every consumer experiment (in ``select``, when given) is done
    ok; returns how many."""
    records = StudyRecords(folder, grid)
    return sum(_prune_done(records, ckpt, ids) for ckpt, ids in _consumers(grid, select).items())


def run_study(
    spec: Spec, out: str | Path, executor: str = "local", retry_failed: bool = False,
    keep_checkpoints: bool = False, data_dir: str | Path | None = None,
    progress: bool = True, select: set[str] | None = None, **executor_options: Any,
) -> RunSummary:
    """Run every missing experiment of `spec` (of those in ``select``, when given) in the
    study folder `out` (see module docs)."""
    grid = expand(spec)
    the_executor = EXECUTORS.get(executor)(**executor_options)  # fails early (e.g. no Ray)
    folder = StudyFolder(out).create()
    save_spec(folder, spec)
    folder.clean_partial()
    adopt_checkpoints(grid, folder)
    records = StudyRecords(folder, grid)
    the_todo = todo(grid, records, retry_failed, select)
    execution = Execution(
        device=spec.device, data_dir=None if data_dir is None else str(data_dir),
        plugins=tuple(spec.plugins),
        resources={k: Resources(**v.model_dump()) for k, v in spec.resources.items()},
    )
    summary = RunSummary(problems=list(the_todo.problems), refused=grid.refused)
    n_records = sum(n.produces == "record" for n in the_todo.nodes)
    consumers = {} if keep_checkpoints else _consumers(grid, select)

    def report(node: Node, outcome: Outcome) -> None:
        summary.ran[node.stage] += 1
        folder.append_log({
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"), "stage": node.stage,
            "id": node.id, "status": outcome.status, "seconds": round(outcome.seconds, 4),
            "error": outcome.error,
        })
        if node.produces == "record":
            if outcome.status == "ok":
                summary.done += 1
                for parent in grid.ancestors(node.id) if consumers else []:
                    # free the disk as soon as a checkpoint is used up
                    summary.pruned += _prune_done(records, parent, consumers[parent])
            else:
                summary.failed += 1
                summary.failures.append((node.id, outcome.error or ""))

    bars = (_bars(the_todo.stage_totals(), n_records) if progress
            else contextlib.nullcontext(lambda node, outcome: None))
    try:
        with bars as advance:

            def report_all(node: Node, outcome: Outcome) -> None:
                report(node, outcome)
                advance(node, outcome)

            the_executor.run(the_todo.nodes, folder, execution, report_all)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        folder.clean_partial()
    if not keep_checkpoints and not summary.interrupted:
        summary.pruned += prune(grid, folder, select)
    return summary


@dataclass
class StageStatus:
    done: int = 0
    failed: int = 0
    pending: int = 0


def study_status(out: str | Path) -> dict[str, StageStatus]:
    """Done / failed / pending per stage of the study in folder `out` (reads, changes nothing).
    A checkpoint stage execution is done when its folder is whole or every experiment that
    needs it is done (it was pruned); failed when an experiment failed at that stage."""
    folder = StudyFolder(out)
    grid = expand(saved_spec(folder))
    records = _records_of(grid, folder)
    status: dict[str, StageStatus] = {}
    failed_at: dict[str, str] = {}
    for node in grid.records():
        record = records.get(node.id)
        if record is not None and not record.ok:
            stage = record.failed_stage or node.stage
            parent: str | None = node.id
            while parent is not None and grid.nodes[parent].stage != stage:
                parent = grid.nodes[parent].parent
            failed_at[parent or node.id] = stage
    consumers = grid.consumers()
    for node in grid.nodes.values():
        entry = status.setdefault(node.stage, StageStatus())
        if node.produces == "record":
            record = records.get(node.id)
            if record is None:
                entry.pending += 1
            elif record.ok:
                entry.done += 1
            else:
                entry.failed += 1
        elif node.id in failed_at:
            entry.failed += 1
        else:
            whole = False
            with contextlib.suppress(RecordError):
                whole = checkpoint_ok(folder, node)
            users = [records.get(i) for i in consumers[node.id]]
            if whole or all(r is not None and r.ok for r in users):
                entry.done += 1
            else:
                entry.pending += 1
    first = {"compress": 0, "recover": 1}
    return dict(sorted(status.items(), key=lambda item: (first.get(item[0], 2), item[0])))


def _records_of(grid: Grid, folder: StudyFolder) -> dict[str, Record | None]:
    """Record id -> its record (None when missing or damaged)."""
    records = StudyRecords(folder, grid)
    out: dict[str, Record | None] = {}
    for node in grid.records():
        try:
            out[node.id] = records.get(node.id)
        except RecordError:
            out[node.id] = None
    return out
