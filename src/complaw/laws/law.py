"""A `Law`: a form with coefficients, from a fit or from the paper, that predicts L."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import stdtrit

from complaw.errors import LawError
from complaw.laws.forms import CONST, Form, get_form
from complaw.laws.table import (
    METRICS,
    NegativeDataSizeError,
    NonPositiveValueError,
    RatioOutOfRangeError,
)


def law_inputs(L0: Any, r: Any, D: Any = 0.0) -> dict[str, np.ndarray]:
    """Broadcast (L0, r, D) to equal-length float arrays and check their domains."""
    try:
        L0a, ra, Da = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (L0, r, D))
        L0a, ra, Da = np.broadcast_arrays(L0a, ra, Da)
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
    return {"L0": L0a.copy(), "r": ra.copy(), "D": Da.copy()}


@dataclass
class Prediction:
    """Predicted L with an optional confidence interval for the mean (None when unknown)."""

    L: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    level: float = 0.95


@dataclass
class Law:
    """A compression law: a form, its coefficients and what is known of their uncertainty.

    ``coefficients`` holds ``alpha``/``beta``/``gamma`` as the form needs, plus ``const`` when
    the law has an intercept. ``cov`` (in `coef_names` order) and ``df_resid`` come from a fit
    and give confidence intervals; ``draws`` are bootstrap coefficient draws. Published laws
    carry neither.
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

    def __post_init__(self) -> None:
        form = get_form(self.form)
        if self.metric not in METRICS:
            raise LawError(
                f"law {self.name!r}: metric {self.metric!r} is not one of {', '.join(METRICS)}"
            )
        missing = [t.coef for t in form.terms if t.coef not in self.coefficients]
        if missing:
            raise LawError(f"law {self.name!r} lacks coefficient(s) {', '.join(missing)}")
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

    def predict(self, L0: Any, r: Any, D: Any = 0.0, level: float = 0.95) -> Prediction:
        """Predict L at (L0, r, D); with a covariance, also a ``level`` CI for the mean."""
        data = law_inputs(L0, r, D)
        form = self.form_obj
        L = form.predict(self.coefficients, data)
        if self.cov is None:
            return Prediction(L, level=level)
        X = form.design(data, self.has_intercept)
        eta = X @ self.vector() + form.offset_of(data)
        se = np.sqrt(np.einsum("ij,jk,ik->i", X, np.asarray(self.cov), X))
        dof = self.df_resid if self.df_resid and self.df_resid > 0 else np.inf
        q = stdtrit(dof, 0.5 + level / 2.0)
        return Prediction(
            L, form.link_inverse(eta - q * se), form.link_inverse(eta + q * se), level
        )

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
        if self.note:
            out["note"] = self.note
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
            )
        except KeyError as exc:
            raise LawError(f"law description lacks field {exc.args[0]!r}: {d!r:.200}") from None
