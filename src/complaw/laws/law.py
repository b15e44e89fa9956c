"""A `Law`: a form with coefficients, from a fit or from the paper, that predicts L."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import stdtrit

from complaw.errors import LawError
from complaw.laws.forms import CONST, Form, get_form
from complaw.laws.metrics import METRICS
from complaw.laws.table import (
    NegativeDataSizeError,
    NonPositiveValueError,
    RatioOutOfRangeError,
)


def law_inputs(L0: Any, r: Any, D: Any = 0.0, T0: Any = np.nan) -> dict[str, np.ndarray]:
    """Broadcast (L0, r, D) and the base task loss T0 (the two-step law's start; NaN: unknown)
    to equal-length float arrays and check their domains."""
    try:
        L0a, ra, Da, T0a = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (L0, r, D, T0))
        L0a, ra, Da, T0a = np.broadcast_arrays(L0a, ra, Da, T0a)
    except (TypeError, ValueError) as exc:
        raise LawError(f"L0, r and D must be numbers or equal-length lists: {exc}") from None
    if not (np.all(np.isfinite(L0a)) and np.all(L0a > 0)):
        raise NonPositiveValueError(f"L0 must be > 0 (the laws use log L0); got {L0a.tolist()}")
    if np.any(~np.isfinite(ra)) or np.any(ra < 0) or np.any(ra >= 1):
        raise RatioOutOfRangeError(
            f"compression ratio r must be in [0, 1); got {ra.tolist()} (give 0.3, not 30)"
        )
    if np.any(np.isnan(Da)) or np.any(Da < 0):
        raise NegativeDataSizeError(f"RFT size D must be >= 0; got {Da.tolist()}")
    return {"L0": L0a.copy(), "r": ra.copy(), "D": Da.copy(), "T0": T0a.copy()}


@dataclass
class Prediction:
    """Predicted L with, when the law knows its uncertainty, a ``level`` confidence interval
    for the mean (``low``, ``high``) and a prediction interval for a new measurement
    (``pi_low``, ``pi_high``); None when unknown (published laws)."""

    L: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    level: float = 0.95
    pi_low: np.ndarray | None = None
    pi_high: np.ndarray | None = None


@dataclass
class Law:
    """A compression law: a form with coefficients, and what is known of their uncertainty.

    ``coefficients`` holds the form's coefficients (plus ``const`` for a linear form with an
    intercept). ``cov`` (in `coef_names` order), ``df_resid`` and ``resid_std`` (the residual
    standard deviation on the form's `Scale`: log L for most forms) come from a fit and give
    confidence and prediction intervals; ``draws`` are bootstrap coefficient draws. Published
    laws carry none of them. ``T0`` is the base model's task loss where the law is one model's
    two-step accuracy law (the planner's candidate; NaN: unknown, see `Law.predict`).
    """

    name: str
    form: str
    metric: str
    coefficients: dict[str, float]
    source: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    cov: np.ndarray | None = None
    df_resid: float | None = None
    draws: np.ndarray | None = None
    note: str = ""
    resid_std: float | None = None
    T0: float = math.nan

    def __post_init__(self) -> None:
        form = get_form(self.form)
        if self.metric not in METRICS:
            raise LawError(
                f"law {self.name!r}: metric {self.metric!r} is not one of {', '.join(METRICS)}"
            )
        form.check(self.coefficients, f"law {self.name!r}")
        self.coefficients = {k: float(v) for k, v in self.coefficients.items()}

    @property
    def form_obj(self) -> Form:
        """The registered `Form` of this law."""
        return get_form(self.form)

    @property
    def has_intercept(self) -> bool:
        """Whether the law carries a free constant (``const``)."""
        return CONST in self.coefficients

    @property
    def coef_names(self) -> list[str]:
        """Coefficient names in the order of ``cov`` and ``draws`` columns."""
        return self.form_obj.coef_names(self.has_intercept)

    def vector(self) -> np.ndarray:
        """The coefficients as a vector in `coef_names` order."""
        return np.array([self.coefficients[c] for c in self.coef_names])

    def formula(self) -> str:
        """The law written out with its numbers."""
        return self.form_obj.formula(self.coefficients)

    def gradient(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """d(L on the form's scale)/d(coefficients) at ``data`` (rows x `coef_names`), by central
        differences (exact for the linear forms up to rounding)."""
        form = self.form_obj
        names = self.coef_names
        theta = self.vector()
        out = np.empty((len(data["r"]), len(names)))
        for j, name in enumerate(names):
            h = 1e-6 * max(1.0, abs(theta[j]))
            up, down = dict(self.coefficients), dict(self.coefficients)
            up[name] += h
            down[name] -= h
            out[:, j] = (form.scale.to_scale(form.predict(up, data))
                         - form.scale.to_scale(form.predict(down, data))) / (2 * h)
        return out

    def predict(self, L0: Any, r: Any, D: Any = 0.0, level: float = 0.95,
                T0: Any = None) -> Prediction:
        """Predict L at (L0, r, D) and the base task loss ``T0`` (default: the law's own),
        which only the two-step accuracy law reads; with a covariance, also the ``level``
        confidence interval of the mean and, with ``resid_std``, the prediction interval of a
        new measurement, both symmetric on the form's scale (delta method), so a logit-scale
        law's intervals lie inside (0, 1)."""
        data = law_inputs(L0, r, D, self.T0 if T0 is None else T0)
        form = self.form_obj
        L = form.predict(self.coefficients, data)
        if self.cov is None:
            return Prediction(L, level=level)
        z = form.scale.to_scale(L)
        G = self.gradient(data)
        var = np.maximum(np.einsum("ij,jk,ik->i", G, np.asarray(self.cov), G), 0.0)
        dof = self.df_resid if self.df_resid and self.df_resid > 0 else np.inf
        q = stdtrit(dof, 0.5 + level / 2.0)
        se = np.sqrt(var)
        back = form.scale.from_scale
        out = Prediction(L, back(z - q * se), back(z + q * se), level)
        if self.resid_std is not None and np.isfinite(self.resid_std):
            wide = np.sqrt(var + self.resid_std**2)
            out.pi_low, out.pi_high = back(z - q * wide), back(z + q * wide)
        return out

    def coefficient_draws(self, n: int = 2000, seed: int = 0) -> np.ndarray | None:
        """Coefficient draws (rows, `coef_names` columns): the bootstrap draws when the law has
        them, else ``n`` seeded normal draws from ``cov``, else None (published laws)."""
        if self.draws is not None:
            return np.asarray(self.draws)
        if self.cov is None:
            return None
        rng = np.random.default_rng(seed)
        return rng.multivariate_normal(self.vector(), np.asarray(self.cov), size=n)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (bootstrap draws are left out; ``from_dict`` reads it back)."""
        out: dict[str, Any] = {
            "name": self.name,
            "form": self.form,
            "metric": self.metric,
            "coefficients": dict(self.coefficients),
            "source": self.source,
            "stats": self.stats,
        }
        if self.cov is not None:
            out["cov"] = np.asarray(self.cov).tolist()
            out["df_resid"] = self.df_resid
        if self.resid_std is not None:
            out["resid_std"] = self.resid_std
        if self.note:
            out["note"] = self.note
        if math.isfinite(self.T0):
            out["T0"] = self.T0
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Law:
        """Rebuild a law written by `to_dict`."""
        try:
            return cls(
                name=str(d["name"]),
                form=str(d["form"]),
                metric=str(d["metric"]),
                coefficients=dict(d["coefficients"]),
                source=str(d.get("source", "")),
                stats=dict(d.get("stats") or {}),
                cov=None if d.get("cov") is None else np.asarray(d["cov"], dtype=float),
                df_resid=d.get("df_resid"),
                note=str(d.get("note", "")),
                resid_std=d.get("resid_std"),
                T0=float(d.get("T0", math.nan)),
            )
        except KeyError as exc:
            raise LawError(f"law description lacks field {exc.args[0]!r}: {d!r:.200}") from None
