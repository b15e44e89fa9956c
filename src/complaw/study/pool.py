"""A study spec's grid as a design pool: its units (what runs together), their stage
executions and costs (`complaw.study.cost`, calibrated by the study folder's log and baseline
records), the law rows measured on units, the records they miss, and the adaptive design on
the pool.

The design itself (seed, V-optimal batches, stopping) is `complaw.laws.design`; this module
knows the grid and the study folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from complaw.errors import RecordError
from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import base_table, law_table, load_law_table
from complaw.laws.design import AdaptiveDesign, Budget, DesignError, Pool
from complaw.laws.metrics import get_metric
from complaw.laws.prior import PriorDesign
from complaw.study.cost import cost_model, params_from_name
from complaw.study.grid import Grid, Node
from complaw.study.runner import StudyRecords
from complaw.study.spec import DesignSpec, Spec


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
    calibrate the costs of the units chosen so far (`complaw.study.cost`); ``params``
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
    costs = cost_model(grid.nodes.values())
    found = None if folder is None else StudyRecords(folder, grid)
    ids = grid.aliases()  # an older log names nodes by their earlier ids

    def costs_for(chosen: Sequence[str]) -> dict[str, float]:
        paid = set().union(*(nodes[u] for u in chosen)) if chosen else set()
        sizes = dict(named)
        if found is not None and chosen:
            sizes.update(_base_params(found, [u for u in chosen if u.startswith("base:")],
                                      records))
            log = {ids[e["id"]]: float(e["seconds"]) for e in found.folder.read_log()
                   if e.get("status") == "ok" and ids.get(e.get("id")) in paid}
        else:
            log = {}
        return costs(sizes, log)

    pool = Pool(pd.DataFrame(points, columns=["unit", "model", "method", "calibration", "r",
                                              "D", "base"]),
                nodes, costs(named, {}), costs_for if folder is not None else None)
    return StudyPool(pool, grid, records)


def _base_params(found: StudyRecords, bases: list[str],
                 records: dict[str, list[str]]) -> dict[str, float]:
    """Parameters of the models whose baseline units ran, from their records."""
    out = {}
    for unit in bases:
        for ident in records[unit]:
            try:
                record = found.get(ident)
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


def make_design(spec: Spec, study: StudyPool, design: DesignSpec | None,
                folder: StudyFolder | None = None) -> AdaptiveDesign | PriorDesign:
    """The adaptive design ``design`` on the pool of ``spec``'s grid; with a ``prior``, the
    design of new models from it (`complaw.laws.prior.PriorDesign`), which reads their
    baselines in ``folder``."""
    if design is None:
        raise DesignError("the spec has no design; give --design adaptive or a design: key")
    stage = get_metric(design.metric).stage
    if stage not in {n.stage for n in study.grid.records()}:
        raise DesignError(
            f"no law to fit: the design fits {design.metric}, and the spec has no {stage} "
            "evaluation; add one")
    if design.prior is not None:
        if folder is None:
            raise DesignError("a design with a prior runs in a study folder")
        return PriorDesign(study.pool, load_law_table(design.prior),
                           lambda: base_table(folder.root), metric=design.metric,
                           form=design.form, budget=Budget.parse(design.budget),
                           batch=design.batch, ci_width=design.ci_width,
                           share=True if design.share is None else design.share,
                           trend=design.trend)
    by = design.by
    if by is None:
        varied = study.pool.points[~study.pool.points["base"]]
        by = [c for c in ("model", "method") if varied[c].nunique() > 1]
    return AdaptiveDesign(study.pool, metric=design.metric, form=design.form, by=by,
                          budget=Budget.parse(design.budget), batch=design.batch,
                          ci_width=design.ci_width)


def missing_records(folder: StudyFolder, study: StudyPool, units: Sequence[str],
                    failed: bool = False) -> list[str]:
    """The record ids of ``units`` not in the folder (damaged ones too; ``failed``: and the
    failed ones)."""
    out, found = [], StudyRecords(folder, study.grid)
    for unit in units:
        for ident in study.records[unit]:
            try:
                record = found.get(ident)
            except RecordError:
                record = None
            if record is None or (failed and not record.ok):
                out.append(ident)
    return out
