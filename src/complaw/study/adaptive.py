"""An adaptive study: run only the batches the design chooses (`run_adaptive`), write what
it did to design.json, and say where a study stands (`design_status`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from complaw.experiment.folder import StudyFolder
from complaw.laws.design import AdaptiveDesign, Step, curve
from complaw.study.grid import expand
from complaw.study.pool import StudyPool, build_pool, make_design, missing_records, observed
from complaw.study.runner import RunSummary, prune, run_study, save_spec
from complaw.study.spec import DesignSpec, Spec


@dataclass
class AdaptiveRun(RunSummary):
    """What `run_adaptive` did: a `RunSummary` of every batch, the design's steps and the
    number of units in the grid."""

    steps: list[Step] = field(default_factory=list)
    units: int = 0

    def add(self, batch: RunSummary) -> None:
        self.done += batch.done
        self.failed += batch.failed
        self.ran += batch.ran
        self.problems += batch.problems
        self.failures += batch.failures
        self.refused = batch.refused  # the same grid for every batch
        self.interrupted = self.interrupted or batch.interrupted



def run_adaptive(spec: Spec, out: str | Path, **run_options: Any) -> AdaptiveRun:
    """Run the adaptive design of ``spec`` (its ``design``) in study folder ``out``: each
    step's batch is run with `run_study` (only its experiments); a rerun replays the finished
    steps from the records and goes on where it stopped. ``run_options`` go to `run_study`."""
    grid = expand(spec)
    folder = StudyFolder(out)
    study = build_pool(grid, folder)
    the_design = make_design(spec, study, spec.design, folder)
    folder.create()
    save_spec(folder, spec)
    result = AdaptiveRun(units=len(study.pool.units))
    keep = run_options.pop("keep_checkpoints", False)
    for step in the_design.steps(lambda units: observed(folder, study, units)):
        result.steps.append(step)
        todo = missing_records(folder, study, step.batch, run_options.get("retry_failed"))
        if todo:
            result.add(run_study(spec, out, select=set(todo), keep_checkpoints=True,
                                 **run_options))
            if result.interrupted:
                return result
    chosen = result.steps[-1].chosen
    if not keep:
        result.pruned = prune(grid, folder, {i for u in chosen for i in study.records[u]})
    folder.write_design(summary(spec.design, the_design, result.steps,
                                observed(folder, study, chosen)))
    return result


def summary(settings: DesignSpec, design: AdaptiveDesign, steps: list[Step],
            table: pd.DataFrame, seeds: int = 10) -> dict[str, Any]:
    """What design.json holds: the settings, each step (batch, cost, CI widths, why it
    stopped) and the held-out error against cost of the study's own records (`curve`)."""
    return {
        "settings": settings.model_dump(mode="json"),
        "form": design.form.name,
        "steps": [{"index": s.index, "batch": s.batch, "experiments": len(s.chosen),
                   "spent_s": s.spent, "budget_s": s.budget, "grid_s": s.total,
                   "stop": s.stop, "ci_widths": s.ci_widths()} for s in steps],
        "curve": curve(table, design, steps, seeds).to_dict("records"),
    }


@dataclass
class DesignStatus:
    """Where an adaptive study stands (`complaw status`)."""

    step: Step
    experiments_done: int
    experiments_total: int
    batch_done: int
    finished: bool

    def rows(self) -> list[tuple[str, str]]:
        s = self.step
        state = (f"finished: {s.stop}" if self.finished
                 else f"step {s.index}: {self.batch_done} of {len(s.batch)} experiments run")
        rows = [("design", state),
                ("experiments run", f"{self.experiments_done:,} of {self.experiments_total:,}"),
                ("cost used", f"{s.spent:,.0f} s of {s.budget:,.0f} s budget "
                              f"({s.spent / s.total:.1%} of the grid's {s.total:,.0f} s)")]
        rows += [(f"CI width {k}", f"{v:.4g}") for k, v in s.ci_widths().items()]
        return rows


def design_status(out: str | Path, spec: Spec) -> DesignStatus:
    """The adaptive design's progress in study folder ``out`` (reads, changes nothing)."""
    grid = expand(spec)
    folder = StudyFolder(out)
    study = build_pool(grid, folder)
    the_design = make_design(spec, study, spec.design, folder)
    last = None
    for step in the_design.steps(lambda units: observed(folder, study, units)):
        last = step
        missing = missing_records(folder, study, step.batch)
        if missing:
            batch_records = sum(len(study.records[u]) for u in step.batch)
            done_units = step.chosen
            return DesignStatus(step, _count(study, done_units) + batch_records - len(missing),
                                len(grid.records()), len(step.batch) - len({
                                    u for u in step.batch
                                    if set(study.records[u]) & set(missing)}), False)
    return DesignStatus(last, _count(study, last.chosen), len(grid.records()), 0, True)


def _count(study: StudyPool, units: Sequence[str]) -> int:
    return sum(len(study.records[u]) for u in units)
