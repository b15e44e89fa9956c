"""Run a study: execute what is missing in a study folder, locally or on Ray.

Study folder layout (the unit of resumption; on a cluster it must be on a filesystem every
worker sees):

    STUDY/spec.yaml                the spec the folder was run with
    STUDY/records/<id>.json        one record per experiment (id = the experiment's content id)
    STUDY/checkpoints/<id>/        one folder per checkpoint stage execution (content id),
                                   written atomically; a half-written one is a hidden
                                   `.<id>.*.tmp` folder, never taken as done
    STUDY/log.jsonl                one line per stage execution the runner saw finish

A record with status "ok" is done; "failed" is skipped unless `retry_failed`; a record or
checkpoint that cannot be read (truncated, corrupt, wrong id) is reported and recomputed.
Each experiment is isolated: an exception (OOM included) or a non-finite metric becomes a
failed record holding its error (and the failed stage), and the rest go on. Checkpoints that no
pending or failed experiment still needs are removed at the end unless `keep_checkpoints`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from complaw.errors import ConfigError, RecordError
from complaw.io import ensure_dir, write_text_atomic
from complaw.registry import Registry
from complaw.study.grid import Grid, Node, expand
from complaw.study.records import new_record, write_record
from complaw.study.spec import Spec, import_plugins, parse_spec
from complaw.study.stages import STAGES, StageContext

SPEC_FILE = "spec.yaml"


@dataclass(frozen=True)
class Settings:
    """How to execute (not part of any identity)."""

    device: str = "cpu"
    data_dir: str | None = None
    plugins: tuple[str, ...] = ()
    resources: dict[str, dict[str, float]] = field(default_factory=dict)
    max_retries: int = 2


@dataclass(frozen=True)
class Outcome:
    """What one stage execution came to."""

    id: str
    stage: str
    status: str  # "ok" | "failed"
    error: str | None = None
    failed_stage: str | None = None
    seconds: float = 0.0


class StudyFolder:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.records = self.root / "records"
        self.checkpoints = self.root / "checkpoints"
        self.log = self.root / "log.jsonl"

    def create(self) -> StudyFolder:
        ensure_dir(self.records)
        ensure_dir(self.checkpoints)
        return self

    def record_path(self, ident: str) -> Path:
        return self.records / f"{ident}.json"

    def checkpoint_path(self, ident: str) -> Path:
        return self.checkpoints / ident

    def read_record(self, ident: str) -> dict[str, Any] | None:
        """The record of `ident`, None if absent; RecordError if it is damaged."""
        path = self.record_path(ident)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RecordError(f"{path} is damaged ({exc})") from None
        if not isinstance(record, dict) or record.get("id") != ident or "status" not in record:
            raise RecordError(f"{path} is not the record of experiment {ident}")
        return record

    def checkpoint_ok(self, node: Node) -> bool:
        """Whether the checkpoint of `node` is there and whole (RecordError if damaged)."""
        folder = self.checkpoint_path(node.id)
        if not folder.is_dir():
            return False
        STAGES.get(node.stage).validate(folder)
        return True

    def clean_partial(self) -> list[Path]:
        """Remove the temp folders/files of interrupted writes; returns what was removed."""
        removed = []
        for folder in (self.checkpoints, self.records):
            for path in folder.glob(".*.tmp"):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
                removed.append(path)
        return removed

    def append_log(self, entry: dict[str, Any]) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def save_spec(self, spec: Spec) -> None:
        write_text_atomic(self.root / SPEC_FILE,
                          yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))

    def load_spec(self) -> Spec:
        path = self.root / SPEC_FILE
        if not path.is_file():
            raise ConfigError(f"{self.root} is not a study folder ({SPEC_FILE} is missing); "
                              "run `complaw run SPEC --out FOLDER` first")
        return parse_spec(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


@dataclass
class Plan:
    """What a run will do: the nodes to execute (parents before children: the pending, damaged
    and, with retry_failed, failed records, and the checkpoints they need that are not whole on
    disk), and the damage found on the way."""

    todo: list[Node]
    problems: list[str]

    def stage_totals(self) -> Counter:
        return Counter(n.stage for n in self.todo)


def plan(grid: Grid, folder: StudyFolder, retry_failed: bool = False) -> Plan:
    problems: list[str] = []
    needed: set[str] = set()
    for node in grid.records():
        try:
            record = folder.read_record(node.id)
        except RecordError as exc:
            problems.append(f"{exc}; recomputing it")
            record = None
        if record is None or (record["status"] != "ok" and retry_failed):
            parent: str | None = node.id
            while parent is not None and parent not in needed:
                needed.add(parent)
                parent = grid.nodes[parent].parent
    todo = []
    for node in grid.nodes.values():
        if node.id not in needed:
            continue
        if node.produces == "checkpoint":
            try:
                if folder.checkpoint_ok(node):
                    continue
            except RecordError as exc:
                problems.append(f"{exc}; recomputing it")
                shutil.rmtree(folder.checkpoint_path(node.id), ignore_errors=True)
        todo.append(node)
    return Plan(todo, problems)


def _context(folder: StudyFolder, node: Node, settings: Settings) -> StageContext:
    if node.parent is None:
        source = node.model
    else:
        source = str(folder.checkpoint_path(node.parent))
    output = (folder.checkpoint_path(node.id) if node.produces == "checkpoint"
              else folder.record_path(node.id))
    return StageContext(config=node.step, chain=node.config, source=source, output=output,
                        device=settings.device, dtype=node.dtype, data_dir=settings.data_dir)


def _non_finite(record: dict[str, Any]) -> str | None:
    for metric in record.get("metrics", []):
        value = metric.get("value")
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"metric {metric.get('metric')} on {metric.get('dataset')} is {value!r}"
    if not record.get("metrics"):
        return "the stage returned no metrics"
    return None


def _failed_record(node: Node, settings: Settings, error: str, stage: str) -> dict[str, Any]:
    record = new_record("evaluate", node.config, settings.device)
    record.update(status="failed", error=error, failed_stage=stage)
    return record


def _free_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_node(root: str, node: Node, settings: Settings, upstream: Outcome | None = None
             ) -> Outcome:
    """Execute one stage (in this process, or in a Ray worker). Never raises for a failure of
    the stage itself: a record node writes a failed record, a checkpoint node returns a failed
    outcome that its dependents turn into failed records."""
    import_plugins(list(settings.plugins))
    folder = StudyFolder(root)
    start = time.perf_counter()
    if upstream is not None and upstream.status != "ok":
        error = upstream.error or "upstream stage failed"
        failed_stage = upstream.failed_stage or upstream.stage
        if node.produces == "record":
            write_record(folder.records, _failed_record(node, settings, error, failed_stage))
        return Outcome(node.id, node.stage, "failed", error, failed_stage)
    stage = STAGES.get(node.stage)
    try:
        result = stage.run(_context(folder, node, settings))
        if node.produces == "record":
            problem = _non_finite(result)
            if problem is not None:
                raise FloatingPointError(problem)
            result.update(id=node.id, config=node.config, status="ok", error=None)
            write_record(folder.records, result)
    except Exception as exc:  # each experiment is isolated: record the error, go on
        error = f"{type(exc).__name__}: {exc}"
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        if node.produces == "record":
            write_record(folder.records, _failed_record(node, settings, error + where,
                                                        node.stage))
        _free_memory()
        return Outcome(node.id, node.stage, "failed", error, node.stage,
                       time.perf_counter() - start)
    return Outcome(node.id, node.stage, "ok", seconds=time.perf_counter() - start)


Report = Callable[[Node, Outcome], None]


class Executor:
    """Runs plan.todo (parents before children) and reports each outcome."""

    def run(self, todo: list[Node], folder: StudyFolder, settings: Settings,
            report: Report) -> None:
        raise NotImplementedError


EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor", ConfigError)


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """One stage at a time in this process."""

    def run(self, todo: list[Node], folder: StudyFolder, settings: Settings,
            report: Report) -> None:
        outcomes: dict[str, Outcome] = {}
        for node in todo:
            outcome = run_node(str(folder.root), node, settings, outcomes.get(node.parent))
            outcomes[node.id] = outcome
            report(node, outcome)


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    ran: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    pruned: int = 0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)  # (experiment id, error)


@contextlib.contextmanager
def _bars(totals: Counter, experiments: int) -> Iterator[Report]:
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


def prune(grid: Grid, folder: StudyFolder) -> int:
    """Remove checkpoints whose every consumer experiment is done ok; returns how many."""
    removed = 0
    for ckpt, consumers in grid.consumers().items():
        path = folder.checkpoint_path(ckpt)
        if not path.is_dir():
            continue
        records = []
        for ident in consumers:
            with contextlib.suppress(RecordError):
                records.append(folder.read_record(ident))
        if all(r is not None and r["status"] == "ok" for r in records) and len(records) == len(
                consumers):
            shutil.rmtree(path)
            removed += 1
    return removed


def run_study(
    spec: Spec, out: str | Path, executor: str = "local", retry_failed: bool = False,
    keep_checkpoints: bool = False, data_dir: str | Path | None = None,
    progress: bool = True, **executor_options: Any,
) -> RunSummary:
    """Run every missing experiment of `spec` in the study folder `out` (see module docs)."""
    grid = expand(spec)
    make_executor = EXECUTORS.get(executor)
    folder = StudyFolder(out).create()
    folder.save_spec(spec)
    folder.clean_partial()
    the_plan = plan(grid, folder, retry_failed)
    settings = Settings(
        device=spec.device, data_dir=None if data_dir is None else str(data_dir),
        plugins=tuple(spec.plugins),
        resources={k: v.model_dump() for k, v in spec.resources.items()},
    )
    summary = RunSummary(problems=list(the_plan.problems))
    n_records = sum(n.produces == "record" for n in the_plan.todo)

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
            else:
                summary.failed += 1
                summary.failures.append((node.id, outcome.error or ""))

    bars = (_bars(the_plan.stage_totals(), n_records) if progress
            else contextlib.nullcontext(lambda node, outcome: None))
    try:
        with bars as advance:

            def report_all(node: Node, outcome: Outcome) -> None:
                report(node, outcome)
                advance(node, outcome)

            make_executor(**executor_options).run(the_plan.todo, folder, settings, report_all)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        folder.clean_partial()
    if not keep_checkpoints and not summary.interrupted:
        summary.pruned = prune(grid, folder)
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
    grid = expand(folder.load_spec())
    the_plan = _records_of(grid, folder)
    status: dict[str, StageStatus] = {}
    failed_at: dict[str, str] = {}
    for node in grid.records():
        record = the_plan.get(node.id)
        if record is not None and record["status"] != "ok":
            stage = record.get("failed_stage", node.stage)
            parent: str | None = node.id
            while parent is not None and grid.nodes[parent].stage != stage:
                parent = grid.nodes[parent].parent
            failed_at[parent or node.id] = stage
    consumers = grid.consumers()
    for node in grid.nodes.values():
        entry = status.setdefault(node.stage, StageStatus())
        if node.produces == "record":
            record = the_plan.get(node.id)
            if record is None:
                entry.pending += 1
            elif record["status"] == "ok":
                entry.done += 1
            else:
                entry.failed += 1
        elif node.id in failed_at:
            entry.failed += 1
        else:
            whole = False
            with contextlib.suppress(RecordError):
                whole = folder.checkpoint_ok(node)
            users = [the_plan.get(i) for i in consumers[node.id]]
            if whole or all(r is not None and r["status"] == "ok" for r in users):
                entry.done += 1
            else:
                entry.pending += 1
    first = {"compress": 0, "recover": 1}
    return dict(sorted(status.items(), key=lambda item: (first.get(item[0], 2), item[0])))


def _records_of(grid: Grid, folder: StudyFolder) -> dict[str, dict[str, Any] | None]:
    """Record id -> its record (None when missing or damaged)."""
    out: dict[str, dict[str, Any] | None] = {}
    for node in grid.records():
        try:
            out[node.id] = folder.read_record(node.id)
        except RecordError:
            out[node.id] = None
    return out


from complaw.study import ray_executor  # noqa: E402,F401  (registers the "ray" executor)
