"""V-optimality: which measurements shrink a law's prediction variance the most.

A law with coefficient Jacobian G over the rows it must predict and information M = J'J from
the rows it was fitted on has the summed prediction variance s² tr(G'G M⁻¹) (delta method;
exact for the linear forms, Gauss-Newton for the curve forms). A batch B of new rows adds its
own J_B'J_B to M. A prior (a pooled law's covariance C of a new group's coefficients) enters
as M = s² C⁻¹. `best_batch` finds the batch with the largest variance reduction per unit of
cost: exhaustively when there are at most `EXHAUSTIVE_LIMIT` batches, greedily otherwise. The
adaptive design (`complaw.laws.design`) and the ``COL:K`` held-out splits
(`complaw.laws.holdout`) both choose through it; `law_batch` chooses whole units (an
experiment's rows on every dataset) for one fitted law, as the prior-driven design does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import inputs_of
from complaw.laws.law import Law

EXHAUSTIVE_LIMIT = 5000
"""Batches are searched exhaustively when the pool has at most this many of them."""

T = TypeVar("T", bound=Hashable)


@dataclass
class Information:
    """What V-optimality needs for one law: s², the A = G'G of the rows it must predict and
    the M = J'J of what it knows; `variance` is the summed prediction variance s² tr(A M⁻¹)."""

    s2: float
    A: np.ndarray
    M: np.ndarray

    def variance(self, add: np.ndarray | None = None) -> float:
        M = self.M if add is None else self.M + add
        ridge = 1e-10 * max(float(np.trace(M)), 1e-300) / len(M)
        return self.s2 * float(np.trace(np.linalg.solve(M + ridge * np.eye(len(M)), self.A)))


def best_batch(candidates: Sequence[T], k: int, variance: Callable[[Sequence[T]], float],
               cost: Callable[[Sequence[T]], float], remaining: float) -> list[T]:
    """At most ``k`` of ``candidates`` costing at most ``remaining``, with the largest
    reduction of ``variance`` per unit of ``cost`` (``variance([])``: the variance now)."""
    if not candidates or k < 1:
        return []
    base = variance([])
    k = min(k, len(candidates))
    if math.comb(len(candidates), k) <= EXHAUSTIVE_LIMIT:
        best, best_score = [], -math.inf
        for batch in itertools.combinations(candidates, k):
            c = cost(batch)
            if c > remaining * (1 + 1e-9):
                continue
            score = (base - variance(batch)) / c
            if score > best_score + 1e-12 * abs(best_score):
                best, best_score = list(batch), score
        if best:
            return best
    batch: list[T] = []
    for _ in range(k):
        now = variance(batch)
        spent = cost(batch) if batch else 0.0
        best_u, best_score = None, -math.inf
        for u in candidates:
            if u in batch:
                continue
            c = cost([*batch, u])
            if c > remaining * (1 + 1e-9):
                continue
            score = (now - variance([*batch, u])) / max(c - spent, 1e-12)
            if score > best_score:
                best_u, best_score = u, score
        if best_u is None:
            break
        batch.append(best_u)
    return batch


def law_batch(law: Law, rows: pd.DataFrame, units: Sequence[T], k: int,
              cost: Callable[[Sequence[T]], float], remaining: float,
              candidates: Sequence[T] | None = None) -> list[T]:
    """At most ``k`` of ``candidates`` (default: every unit) whose rows shrink the summed
    prediction variance of ``law`` over all of ``rows`` the most per unit of ``cost``;
    ``units`` labels each row with the unit (experiment) that measures it. The law's
    covariance is what it knows, M = s² cov⁻¹ (a pooled law's prior for a new model, or a
    fit)."""
    if law.cov is None or not np.isfinite(np.asarray(law.cov)).all():
        raise LawError(f"law {law.name} has no covariance to choose experiments by")
    G = law.gradient(inputs_of(rows))
    s2 = max(float(law.resid_std or 1.0) ** 2, 1e-12)
    info = Information(s2, G.T @ G, s2 * np.linalg.pinv(np.asarray(law.cov)))
    labels = list(units)
    wanted = list(dict.fromkeys(labels if candidates is None else candidates))
    adds = {u: sum((np.outer(g, g) for g, v in zip(G, labels, strict=True) if v == u),
                   np.zeros_like(info.M)) for u in wanted}
    return best_batch(wanted, k, lambda b: info.variance(sum((adds[u] for u in b),
                                                             np.zeros_like(info.M))),
                      cost, remaining)
