"""The metrics laws model: one registry entry per metric, the one place their vocabulary lives.

A `Metric` declares the evaluation stage whose records hold it, whether higher is better, the
law form it is fitted with when none is named, the `Scale` its values live on, its axis label
and unit, and its *family*: the forms declared for a family model its metrics (``task_loss``
is a loss, so every loss form models it). Law tables, fits, the theory, the planner and its
verification, and the report read these declarations. Adding a metric is one ``METRICS.add``
call (here or in user code). A stage's L (the paper's intrinsic L, loss, and extrinsic L,
accuracy) is its ``headline`` metric (`stage_metric`). Leaf module: numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from complaw.errors import LawError
from complaw.registry import Registry


@dataclass(frozen=True)
class Scale:
    """The scale a form's residuals and intervals live on: z = to_scale(L), L = from_scale(z).

    ``log_slope`` is log |dz/dL|, the Jacobian that puts a likelihood on z back on L (AIC/BIC
    compare forms on different scales). Values outside the scale's domain are clipped into it
    (an interval that wide is unbounded, not an error). ``upper``: the largest value a metric
    on this scale may take (1 for a fraction)."""

    name: str
    to: Callable[[np.ndarray], np.ndarray]
    back: Callable[[np.ndarray], np.ndarray]
    log_slope: Callable[[np.ndarray], np.ndarray]
    upper: float = math.inf

    def to_scale(self, L: np.ndarray) -> np.ndarray:
        return self.to(np.asarray(L, dtype=float))

    def from_scale(self, z: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self.back(np.asarray(z, dtype=float))

    def log_jacobian(self, L: np.ndarray) -> float:
        """sum log |dz/dL| over ``L``."""
        return float(np.sum(self.log_slope(np.asarray(L, dtype=float))))


def _unit(L: np.ndarray) -> np.ndarray:
    return np.clip(L, 1e-15, 1.0 - 1e-15)


IDENTITY = Scale("identity", lambda L: L, lambda z: z, np.zeros_like)
LOG = Scale("log", lambda L: np.log(np.maximum(L, 1e-300)), np.exp,
            lambda L: -np.log(np.maximum(L, 1e-300)))
LOGIT = Scale("logit", lambda L: logit(_unit(L)), expit,
              lambda L: -np.log(_unit(L)) - np.log1p(-_unit(L)), upper=1.0)


@dataclass(frozen=True)
class Metric:
    """What a law needs to know of a metric (see the module docstring)."""

    name: str
    stage: str
    """The evaluation whose records hold it (a spec's ``evaluations:`` key; the paper's law
    names end in it: ``paper:all:intrinsic``)."""
    family: str
    """The forms declared for this family (`complaw.laws.forms.Form.metrics`) model it."""
    higher_is_better: bool
    form: str
    """The law form it is fitted with when none is named (the paper's)."""
    title: str
    unit: str
    scale: Scale = LOG
    """Where its values live: LOG for positive values, LOGIT for a fraction in (0, 1]."""
    headline: bool = False
    """It is its stage's L (`stage_metric`)."""
    reference: str | None = None
    """The form a best law of it must not lose to on held-out rows (`complaw.laws.select.doubt`):
    its measurements are noisy."""
    pooled: str | None = None
    """The form a fit pooled across models and a prior from another study use when none is
    named: the one that carries a law to a model best, held out (docs/laws.md); None: ``form``."""

    @property
    def label(self) -> str:
        """Its axis label, e.g. ``test loss (nats)``."""
        return f"{self.title} ({self.unit})" if self.unit else self.title

    @property
    def sign(self) -> float:
        """+1 when lower is better (compression raises it), -1 when higher is better."""
        return -1.0 if self.higher_is_better else 1.0

    @property
    def fraction(self) -> bool:
        """Its values are fractions (accuracy): errors are reported in points."""
        return self.scale.upper == 1.0

    def sigma(self, kept: float | np.ndarray) -> float | np.ndarray:
        """The bound σ on L / L0 that keeps the fraction ``kept`` of L0: ``kept`` itself when
        higher is better (L >= σ L0), else 1 / ``kept`` (L <= σ L0)."""
        return np.power(kept, -self.sign)

    def meets(self, value: float, target: float) -> bool:
        """``value`` is at least as good as ``target``."""
        return bool(self.sign * (value - target) <= 0)


METRICS: Registry[Metric] = Registry("metric", LawError)


def get_metric(name: str) -> Metric:
    """The registered metric called ``name``."""
    return METRICS.get(name)


def stage_metric(stage: str) -> Metric:
    """A stage's L: its headline metric."""
    for _, metric in METRICS.items():
        if metric.stage == stage and metric.headline:
            return metric
    raise LawError(f"no registered metric is the headline (the L) of stage {stage!r}")


METRICS.add("loss", Metric("loss", "intrinsic", "loss", False, "eq1", "test loss", "nats",
                           headline=True, pooled="plateau"))
METRICS.add("accuracy", Metric("accuracy", "extrinsic", "accuracy", True, "eq1",
                               "zero-shot accuracy", "", LOGIT, headline=True,
                               reference="eq2"))
METRICS.add("task_loss", Metric("task_loss", "extrinsic", "loss", False, "eq1", "task loss",
                                "bits/byte"))
METRICS.add("runtime", Metric("runtime", "extrinsic", "runtime", False, "runtime", "runtime", "s"))
