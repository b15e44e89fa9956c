"""The metrics laws model: one registry entry per metric, the one place their vocabulary lives.

A `Metric` declares the evaluation stage whose records hold it, whether higher is better, the
law form it is fitted with when none is named, the `Scale` its values live on, its axis label
and unit, and its *family*: the forms that model a metric are those declared for its family
(``task_loss`` is a loss, so every loss form models it). Law tables, fits, the planner, the
verification of a plan, the report and the CLI read these declarations. Adding a metric is one
``METRICS.add`` call (here or in user code).

| metric | stage | better | default form | family |
|---|---|---|---|---|
| loss | intrinsic | lower | eq1 | loss |
| accuracy | extrinsic | higher | eq1 | accuracy |
| task_loss | extrinsic | lower | eq1 | loss |
| runtime | extrinsic | lower | runtime | runtime |

A stage's L (the paper's intrinsic L, loss, and extrinsic L, accuracy) is its ``headline``
metric (`stage_metric`). Leaf module: numpy and scipy only.
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
    """The evaluation whose records hold it (a study spec's ``evaluations:`` key, and the
    suffix of the paper's law names: ``paper:all:intrinsic``)."""
    family: str
    """The forms declared for this family model it (`complaw.laws.forms.Form.metrics`)."""
    higher_is_better: bool
    form: str
    """The law form it is fitted with when none is named (the paper's)."""
    label: str
    """Its axis label."""
    unit: str
    scale: Scale = LOG
    """Where its values live: LOG for positive values, LOGIT for a fraction in (0, 1]."""
    headline: bool = False
    """It is its stage's L (`stage_metric`)."""

    @property
    def sign(self) -> float:
        """+1 when lower is better (compression raises it), -1 when higher is better."""
        return -1.0 if self.higher_is_better else 1.0

    @property
    def bound(self) -> str:
        """The comparison a value meeting a target passes: ``>=`` or ``<=``."""
        return ">=" if self.higher_is_better else "<="

    def meets(self, value: float, target: float) -> bool:
        """``value`` is at least as good as ``target``."""
        return bool(self.sign * (value - target) <= 0)


METRICS: Registry[Metric] = Registry("metric", LawError)


def get_metric(name: str) -> Metric:
    """The registered metric called ``name``."""
    return METRICS.get(name)


def stage_metric(stage: str) -> Metric:
    """A stage's L: its headline metric."""
    found = next((m for _, m in METRICS.items() if m.stage == stage and m.headline), None)
    if found is None:
        raise LawError(f"stage {stage!r} has no headline metric; known: "
                       f"{', '.join(m.stage for _, m in METRICS.items() if m.headline)}")
    return found


METRICS.add("loss", Metric("loss", "intrinsic", "loss", False, "eq1", "test loss (nats)",
                           "nats", headline=True))
METRICS.add("accuracy", Metric("accuracy", "extrinsic", "accuracy", True, "eq1",
                               "zero-shot accuracy", "fraction", LOGIT, headline=True))
METRICS.add("task_loss", Metric("task_loss", "extrinsic", "loss", False, "eq1",
                                "task loss (bits/byte)", "bits/byte"))
METRICS.add("runtime", Metric("runtime", "extrinsic", "runtime", False, "runtime", "runtime (s)",
                              "s"))
