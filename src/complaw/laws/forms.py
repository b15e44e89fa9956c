"""The functional forms of compression laws, as a registry of linear models.

Every form is linear in its coefficients after a transform of L (log for the power laws):

    response(L) = offset(L0) + [const] + sum_k coef_k * term_k(L0, r, D)

| name | law | regression |
|---|---|---|
| eq1 | L = L0^a (1+r)^b (1+1/(D+1))^g | log L ~ log L0 + log(1+r) + log(1+1/(D+1)) |
| eq2 | L = L0^a (1+r)^b | log L ~ log L0 + log(1+r) |
| eq3 | L = L0^a (1+1/(D+1))^g | log L ~ log L0 + log(1+1/(D+1)) |
| runtime | S = C (1+r)^b, C = S0 e^c | log S - log S0 ~ [c] + log(1+r) |
| additive | L = a L0 + b r + g/(D+1) | L ~ L0 + r + 1/(D+1) (no logs) |

Eq. 1-3 are fitted with no intercept, as in the paper; ``intercept=True`` adds a free constant
``const`` (log scale: a factor e^const). The runtime law has its constant by default (Table 4's
free C, here relative to the uncompressed runtime S0 = L0, so C = S0 e^const).
Adding a form is a new `Form` and one `FORMS.add` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from complaw.errors import LawError
from complaw.registry import Registry

Inputs = Mapping[str, np.ndarray]
"""Arrays ``L0``, ``r`` and ``D`` of equal length."""

CONST = "const"


@dataclass(frozen=True)
class Term:
    """One regressor: the coefficient it carries and how to compute it from (L0, r, D)."""

    coef: str
    symbol: str
    fn: Callable[[Inputs], np.ndarray]


@dataclass(frozen=True)
class Form:
    """A compression-law form that is linear in its coefficients."""

    name: str
    equation: str
    terms: tuple[Term, ...]
    description: str
    log_response: bool = True
    offset: Callable[[Inputs], np.ndarray] | None = None
    intercept: bool = False
    metrics: tuple[str, ...] = ("loss", "accuracy")

    @property
    def power_law(self) -> bool:
        """True for the multiplicative forms on which the paper's theory works (eq1-3)."""
        return self.log_response and self.offset is None

    def coef_names(self, intercept: bool | None = None) -> list[str]:
        """Coefficient names in design-matrix order (``const`` first when present)."""
        use = self.intercept if intercept is None else intercept
        return ([CONST] if use else []) + [t.coef for t in self.terms]

    def design(self, data: Inputs, intercept: bool | None = None) -> np.ndarray:
        """The design matrix (n x k) for inputs ``data``."""
        use = self.intercept if intercept is None else intercept
        n = len(np.asarray(data["r"]))
        columns = ([np.ones(n)] if use else []) + [
            np.asarray(t.fn(data), dtype=float) for t in self.terms
        ]
        return np.column_stack(columns) if columns else np.empty((n, 0))

    def offset_of(self, data: Inputs) -> np.ndarray:
        """The fixed offset added to the linear predictor (zeros when the form has none)."""
        if self.offset is None:
            return np.zeros(len(np.asarray(data["r"])))
        return np.asarray(self.offset(data), dtype=float)

    def response(self, L: np.ndarray, data: Inputs) -> np.ndarray:
        """The regression response: transform(L) minus the offset."""
        L = np.asarray(L, dtype=float)
        y = np.log(L) if self.log_response else L
        return y - self.offset_of(data)

    def link_inverse(self, eta: np.ndarray) -> np.ndarray:
        """Map the linear predictor (offset included) back to L."""
        return np.exp(eta) if self.log_response else np.asarray(eta)

    def predict(self, coefficients: Mapping[str, float], data: Inputs) -> np.ndarray:
        """L predicted by this form with ``coefficients`` (``const`` optional, default 0)."""
        eta = self.offset_of(data) + float(coefficients.get(CONST, 0.0))
        for term in self.terms:
            if term.coef not in coefficients:
                raise LawError(
                    f"form {self.name} needs coefficient {term.coef!r}; "
                    f"got {', '.join(coefficients) or 'none'}"
                )
            eta = eta + float(coefficients[term.coef]) * np.asarray(term.fn(data), dtype=float)
        return self.link_inverse(eta)

    def formula(self, coefficients: Mapping[str, float]) -> str:
        """The law written out with numbers, e.g. ``L = L0^0.98 (1+r)^-1.18 (1+1/(D+1))^-0.14``."""
        c = coefficients
        if self.name == "additive":
            return f"L = {c['alpha']:.3g} L0 {c['beta']:+.3g} r {c['gamma']:+.3g}/(D+1)" + (
                f" {c[CONST]:+.3g}" if CONST in c else ""
            )
        parts = []
        if CONST in c:
            parts.append(f"{np.exp(c[CONST]):.3g}")
        symbols = {"alpha": "L0", "beta": "(1+r)", "gamma": "(1+1/(D+1))"}
        if self.offset is not None:
            parts.append("S0")
        for term in self.terms:
            parts.append(f"{symbols[term.coef]}^{c[term.coef]:.3g}")
        lhs = "S" if self.name == "runtime" else "L"
        return f"{lhs} = " + " ".join(parts)


def _log_l0(d: Inputs) -> np.ndarray:
    return np.log(np.asarray(d["L0"], dtype=float))


def _log_r(d: Inputs) -> np.ndarray:
    return np.log1p(np.asarray(d["r"], dtype=float))


def _log_d(d: Inputs) -> np.ndarray:
    return np.log1p(1.0 / (np.asarray(d["D"], dtype=float) + 1.0))


ALPHA = Term("alpha", "log L0", _log_l0)
BETA = Term("beta", "log(1+r)", _log_r)
GAMMA = Term("gamma", "log(1+1/(D+1))", _log_d)

FORMS: Registry[Form] = Registry("law form", LawError)

FORMS.add(
    "eq1",
    Form(
        "eq1",
        "L = L0^alpha (1+r)^beta (1+1/(D+1))^gamma",
        (ALPHA, BETA, GAMMA),
        "the paper's compression law (Eq. 1)",
    ),
)
FORMS.add(
    "eq2",
    Form("eq2", "L = L0^alpha (1+r)^beta", (ALPHA, BETA), "ablation without D (Eq. 2)"),
)
FORMS.add(
    "eq3",
    Form(
        "eq3",
        "L = L0^alpha (1+1/(D+1))^gamma",
        (ALPHA, GAMMA),
        "ablation without r (Eq. 3)",
    ),
)
FORMS.add(
    "runtime",
    Form(
        "runtime",
        "S = C (1+r)^beta, C = S0 e^const",
        (BETA,),
        "runtime law (Table 4), relative to the uncompressed runtime S0 = L0",
        offset=_log_l0,
        intercept=True,
        metrics=("runtime",),
    ),
)
FORMS.add(
    "additive",
    Form(
        "additive",
        "L = alpha L0 + beta r + gamma/(D+1)",
        (
            Term("alpha", "L0", lambda d: np.asarray(d["L0"], dtype=float)),
            Term("beta", "r", lambda d: np.asarray(d["r"], dtype=float)),
            Term("gamma", "1/(D+1)", lambda d: 1.0 / (np.asarray(d["D"], dtype=float) + 1.0)),
        ),
        "additive alternative, fitted on L itself (for AIC/BIC comparison)",
        log_response=False,
    ),
)


def get_form(name: str | Form) -> Form:
    """The registered form called ``name`` (a `Form` is returned as is)."""
    return name if isinstance(name, Form) else FORMS.get(name)
