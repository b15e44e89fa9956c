"""V-optimality: which measurements shrink a law's prediction variance the most.

A law with coefficient Jacobian G over the rows it must predict and information M = J'J from
the rows it was fitted on has the summed prediction variance s² tr(G'G M⁻¹) (delta method;
exact for the linear forms, Gauss-Newton for the curve forms). A batch B of new rows adds its
own J_B'J_B to M. A prior (a pooled law's covariance C of a new group's coefficients) enters
as M = s² C⁻¹. `best_batch` finds the batch with the largest variance reduction per unit of
cost: exhaustively when there are at most `EXHAUSTIVE_LIMIT` batches, greedily otherwise. The
adaptive design (`complaw.laws.design`) and the ``COL:K`` held-out splits
(`complaw.laws.holdout`) both choose through it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

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
