"""Replays of the adaptive design (no compute): on the records of a completed study, or on
a spec's grid simulated from a published law."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from complaw.experiment.folder import StudyFolder
from complaw.laws.design import TRUTH, DesignError, Replay, replay
from complaw.study.cost import params_from_name
from complaw.study.grid import expand
from complaw.study.pool import StudyPool, build_pool, make_design, missing_records, observed
from complaw.study.runner import saved_spec
from complaw.study.spec import DesignSpec, Spec


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
