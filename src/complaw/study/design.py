"""Adaptive studies: a study spec's grid as a design pool (units, stage executions, costs), an
adaptive run that executes only the batches the design chooses, its status, and replays of
the design on a completed study or on a grid simulated from a published law.

The design itself (seed, V-optimal batches, stopping) is `complaw.laws.design`; this module
knows the grid, the study folder and what a stage execution costs.

**Cost model.** A stage execution costs (parameters of its model) x (tokens it processes +
`OVERHEAD_TOKENS` for loading) x (seconds per parameter-token of its stage). `TOKENS` says how
many tokens each stage processes (calibration, RFT, evaluation); `PRIOR_RATE` holds seconds per
parameter-token measured with SmolLM2-135M on 2 CPU cores. Once stage executions have run, the
study's log calibrates the rates: a stage's rate on a model becomes its measured seconds over
its parameter-tokens (on that model, else on any model), a stage not yet measured is scaled
like the measured ones, and an execution that ran costs what it took.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import RecordError
from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import law_table
from complaw.laws.design import (
    TRUTH,
    AdaptiveDesign,
    Budget,
    DesignError,
    Pool,
    Replay,
    Step,
    curve,
    replay,
)
from complaw.study.grid import Grid, Node, expand
from complaw.study.runner import (
    RunSummary,
    prune,
    run_study,
    save_spec,
    saved_spec,
    study_record,
)
from complaw.study.spec import DesignSpec, Spec

OVERHEAD_TOKENS = 1024
"""Loading a model, in tokens of work (SmolLM2 loads in about the time it evaluates 1k)."""
DEFAULT_EVAL_TOKENS = 65536
"""Tokens of an intrinsic evaluation without ``max_tokens`` (a test split, roughly)."""
DEFAULT_TASK_DOCS = 1000
REQUEST_TOKENS = 256
"""Tokens per zero-shot document (its choices scored one by one)."""
DECODE_FACTOR = 20
"""A decoded token costs about as much as this many prefilled ones (one token per forward)."""

TOKENS: dict[str, Callable[[Any], float]] = {
    "compress": lambda c: (c.calib_samples or 0) * (c.calib_seq_len or 0),
    "recover": lambda r: r.tokens or (r.samples or 0) * r.seq_len,
    "intrinsic": lambda e: len(e.data) * (e.max_tokens or DEFAULT_EVAL_TOKENS),
    "extrinsic": lambda e: len(e.tasks) * (e.limit or DEFAULT_TASK_DOCS) * REQUEST_TOKENS,
    "task_loss": lambda e: len(e.tasks) * (e.limit or DEFAULT_TASK_DOCS) * REQUEST_TOKENS / 3,
    "speed": lambda s: (s.options.get("repeats", 5) + s.options.get("warmup", 1)) * (
        s.options.get("prompt_len", 256) + DECODE_FACTOR * s.options.get("new_tokens", 32)),
}
"""Tokens each stage processes, by stage name; a stage not named here costs its overhead."""

_EVAL_RATE = 1.0 / (400 * 134.5e6)  # SmolLM2-135M evaluates about 400 tokens/s on 2 cores
PRIOR_RATE: dict[str, float] = {
    "compress": 2.0 * _EVAL_RATE,
    "recover": 400 / 170 * _EVAL_RATE,  # LoRA trains about 170 tokens/s
    "intrinsic": _EVAL_RATE,
    "extrinsic": _EVAL_RATE,
    "task_loss": _EVAL_RATE,
    "speed": _EVAL_RATE,
}
DEFAULT_PARAMS = 1e8


def params_from_name(model: str) -> float:
    """Parameters guessed from a model name (``Qwen/Qwen2.5-0.5B`` -> 5e8), else 1e8."""
    found = re.findall(r"(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", model.lower())
    if not found:
        return DEFAULT_PARAMS
    value, unit = found[-1]
    return float(value) * (1e6 if unit == "m" else 1e9)


def work(node: Node) -> float:
    """Tokens of work of one stage execution (without its model's size)."""
    tokens = TOKENS.get(node.stage)
    return OVERHEAD_TOKENS + (tokens(node.step) if tokens is not None else 0.0)


def unit_of(node: Node) -> str:
    """The design unit of a record node: the checkpoint it evaluates, or its base model."""
    return node.parent or f"base:{node.model}"


@dataclass
class StudyPool:
    """A grid as a design pool, with the record nodes of each unit."""

    pool: Pool
    grid: Grid
    records: dict[str, list[str]]  # unit -> its record node ids


def build_pool(grid: Grid, folder: StudyFolder | None = None,
               params: dict[str, float] | None = None) -> StudyPool:
    """The design pool of ``grid``. With a study ``folder``, its log and its baselines' records
    calibrate the costs of the units chosen so far (see the module docstring); ``params``
    overrides the parameter count of models (e.g. a simulation)."""
    points, nodes, records = [], {}, {}
    for node in grid.records():
        unit = unit_of(node)
        records.setdefault(unit, []).append(node.id)
        nodes[unit] = tuple(sorted(set(nodes.get(unit, ())) | {node.id, *grid.ancestors(node.id)}))
        if len(records[unit]) > 1:
            continue
        exp = node.experiment
        comp, rec = exp.compression, exp.recovery
        points.append({
            "unit": unit, "model": exp.model,
            "method": comp.method if comp else "none",
            "calibration": (comp.calibration if comp else None) or "none",
            "r": comp.ratio if comp else 0.0, "D": float(rec.tokens) if rec else 0.0,
            "base": exp.is_base,
        })
    named = {m: (params or {}).get(m, params_from_name(m)) for m in {n.model for n in
                                                                     grid.nodes.values()}}
    units_of = {n.id: work(n) for n in grid.nodes.values()}
    stage_of = {n.id: n.stage for n in grid.nodes.values()}
    model_of = {n.id: n.model for n in grid.nodes.values()}

    def costs(sizes: dict[str, float], seconds: dict[str, float]) -> dict[str, float]:
        amount = {i: sizes[model_of[i]] * w for i, w in units_of.items()}

        def rates(key: Callable[[str], Any]) -> dict[Any, float]:
            sums: dict[Any, list[float]] = {}
            for i, s in seconds.items():
                if i in amount:
                    pair = sums.setdefault(key(i), [0.0, 0.0])
                    pair[0] += s
                    pair[1] += amount[i]
            return {k: s / a for k, (s, a) in sums.items() if a > 0 and s > 0}

        own = rates(lambda i: (stage_of[i], model_of[i]))  # this stage on this model
        stage = rates(lambda i: stage_of[i])  # this stage on any model
        scales = [stage[s] / PRIOR_RATE.get(s, _EVAL_RATE) for s in stage]
        scale = float(np.median(scales)) if scales else 1.0  # the machine against the prior

        def rate(i: str) -> float:
            return own.get((stage_of[i], model_of[i])) or stage.get(stage_of[i]) or (
                scale * PRIOR_RATE.get(stage_of[i], _EVAL_RATE))

        return {i: seconds[i] if i in seconds else amount[i] * rate(i) for i in amount}

    def costs_for(chosen: Sequence[str]) -> dict[str, float]:
        paid = set().union(*(nodes[u] for u in chosen)) if chosen else set()
        sizes = dict(named)
        if folder is not None and chosen:
            sizes.update(_base_params(folder, [u for u in chosen if u.startswith("base:")],
                                      records))
            log = {e["id"]: float(e["seconds"]) for e in folder.read_log()
                   if e.get("status") == "ok" and e.get("id") in paid}
        else:
            log = {}
        return costs(sizes, log)

    pool = Pool(pd.DataFrame(points, columns=["unit", "model", "method", "calibration", "r",
                                              "D", "base"]),
                nodes, costs(named, {}), costs_for if folder is not None else None)
    return StudyPool(pool, grid, records)


def _base_params(folder: StudyFolder, bases: list[str],
                 records: dict[str, list[str]]) -> dict[str, float]:
    """Parameters of the models whose baseline units ran, from their records."""
    out = {}
    for unit in bases:
        for ident in records[unit]:
            try:
                record = study_record(folder, ident)
            except RecordError:
                continue
            if record is not None and record.ok and record.params.get("total"):
                out[record.config.model] = float(record.params["total"])
                break
    return out


def observed(folder: StudyFolder, study: StudyPool, units: Sequence[str]) -> pd.DataFrame:
    """The law rows measured on ``units`` (ok records only), with their ``unit``."""
    table = law_table(folder.root)
    unit_of_record = {i: u for u in units for i in study.records[u]}
    table = table[table["experiment"].isin(set(unit_of_record))].copy()
    table["unit"] = table["experiment"].map(unit_of_record)
    return table.reset_index(drop=True)


def make_design(spec: Spec, study: StudyPool, design: DesignSpec | None) -> AdaptiveDesign:
    """The adaptive design ``design`` on the pool of ``spec``'s grid."""
    if design is None:
        raise DesignError("the spec has no design; give --design adaptive or a design: key")
    metrics = {"intrinsic": "loss", "extrinsic": "accuracy"}
    kinds = {n.stage for n in study.grid.records()}
    if design.metric not in {metrics[k] for k in kinds if k in metrics}:
        raise DesignError(
            f"no law to fit: the design fits {design.metric}, and the spec has no "
            f"{'intrinsic' if design.metric == 'loss' else 'extrinsic'} evaluation; add one")
    by = design.by
    if by is None:
        varied = study.pool.points[~study.pool.points["base"]]
        by = [c for c in ("model", "method") if varied[c].nunique() > 1]
    return AdaptiveDesign(study.pool, metric=design.metric, form=design.form, by=by,
                          budget=Budget.parse(design.budget), batch=design.batch,
                          ci_width=design.ci_width)


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


def missing_records(folder: StudyFolder, study: StudyPool, units: Sequence[str],
                    failed: bool = False) -> list[str]:
    """The record ids of ``units`` not in the folder (damaged ones too; ``failed``: and the
    failed ones)."""
    out = []
    for unit in units:
        for ident in study.records[unit]:
            try:
                record = study_record(folder, ident)
            except RecordError:
                record = None
            if record is None or (failed and not record.ok):
                out.append(ident)
    return out


def run_adaptive(spec: Spec, out: str | Path, **run_options: Any) -> AdaptiveRun:
    """Run the adaptive design of ``spec`` (its ``design``) in study folder ``out``: each
    step's batch is run with `run_study` (only its experiments); a rerun replays the finished
    steps from the records and goes on where it stopped. ``run_options`` go to `run_study`."""
    grid = expand(spec)
    folder = StudyFolder(out)
    study = build_pool(grid, folder)
    the_design = make_design(spec, study, spec.design)
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
    the_design = make_design(spec, study, spec.design)
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


def replay_study(out: str | Path, design: DesignSpec, seeds: int = 10, seed: int = 0
                 ) -> Replay:
    """Replay the adaptive design on the records of a completed study (no compute): the pool
    is the units whose records are all there, costs come from the study's log."""
    folder = StudyFolder(out).require()
    spec = saved_spec(folder)
    study = build_pool(expand(spec), folder)
    held = [u for u in study.pool.units if not missing_records(folder, study, [u])]
    table = observed(folder, study, held)
    return _replay(spec, StudyPool(study.pool.subset(held), study.grid, study.records), table,
                   design, seeds, seed)


def replay_simulated(spec: Spec, law: str, design: DesignSpec, noise: float = 0.05,
                     seeds: int = 10, seed: int = 0) -> Replay:
    """Replay the adaptive design on ``spec``'s grid simulated from ``law`` (`simulate`)."""
    table, study = simulate(spec, law, noise, seed)
    return _replay(spec, study, table, design, seeds, seed)


def _replay(spec: Spec, study: StudyPool, table: pd.DataFrame, design: DesignSpec,
            seeds: int, seed: int) -> Replay:
    return replay(table, make_design(spec, study, design), seeds, seed)


CHINCHILLA = (1.69, 406.4, 0.34)
"""E, A, alpha of L(N) = E + A / N^alpha (Hoffmann et al. 2022, Approach 3): a simulated
model's L0 on WikiText-2."""
DATASET_FACTOR = {"wikitext2": 1.0, "ptb": 1.3, "alpaca": 0.75}


def _law_for(law: str, model: str):
    """The published law ``law`` for ``model``: a ``{model}`` in the name is the paper's name
    of the model (``paper:{model}:intrinsic`` gives ``paper:qwen-2.5-0.5b:intrinsic`` for
    Qwen/Qwen2.5-0.5B)."""
    from complaw.laws.published import get_law, published_laws

    if "{model}" not in law:
        return get_law(law)
    head, tail = law.split("{model}", 1)

    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    wanted = key(model.split("/")[-1])
    for known in published_laws():
        name = known.name
        if name.startswith(head) and name.endswith(tail) and len(name) > len(head + tail):
            if wanted.endswith(key(name[len(head):len(name) - len(tail)])):
                return known
    raise DesignError(f"no published law {law} for model {model}; name one law instead "
                      "(e.g. paper:all:intrinsic)")


def simulate(spec: Spec, law: str, noise: float = 0.05, seed: int = 0
             ) -> tuple[pd.DataFrame, StudyPool]:
    """A grid simulated from a published law (``{model}`` in its name: each model's own law):
    every unit of ``spec`` gets L = law(L0, r, D) times log-normal noise of ``noise`` (sigma
    of log L); L0 comes from Chinchilla's L(N) for the model's size (from its name) times a
    per-dataset factor. Costs are parameters x tokens (the cost model without timings)."""
    grid = expand(spec)
    laws = {m: _law_for(law, m) for m in spec.models}
    study = build_pool(grid)
    rng = np.random.default_rng(seed)
    data = [d.split(":")[0] for n in grid.records() if n.stage == "intrinsic"
            for d in n.step.data]
    datasets = list(dict.fromkeys(data)) or ["wikitext2"]
    points = study.pool.points[~study.pool.points["base"]]
    rows = []
    E, A, a = CHINCHILLA
    for p in points.itertuples():
        n = params_from_name(p.model)
        for d in datasets:
            L0 = (E + A / n**a) * DATASET_FACTOR.get(d, 1.0)
            truth = float(laws[p.model].predict(L0, p.r, p.D).L[0])
            rows.append({"model": p.model, "method": p.method, "calibration": p.calibration,
                         "dataset": d, "metric": laws[p.model].metric,
                         "L": truth * math.exp(noise * rng.normal()), "L0": L0, "r": p.r,
                         "D": p.D, "unit": p.unit, TRUTH: truth})
    return pd.DataFrame(rows), study
