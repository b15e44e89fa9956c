"""The functional forms of compression laws, as data: one registry entry per form.

A form declares its coefficients (name, symbol, bounds, starting values), how it predicts L from
(L0, r, D), how it is fitted, and whether it is *feasible* (L = L0 at r = 0 for every D). Every
consumer (fit, held-out error, tables, figures, the CLI, predict, the planner) reads these
declarations; none names a coefficient or a form. Adding a form is one ``FORMS.add`` call here
(or in user code).

Two kinds:

* `LinearForm`: linear in its coefficients after a transform of L (log for the power laws),
  ``response(L) = offset(L0) + [const] + sum_k coef_k * term_k(L0, r, D)``, fitted by
  OLS. The paper's Eq. 1-3, the runtime law and the additive form.
* `CurveForm`: any prediction function, fitted by robust nonlinear least squares on log
  residuals from several starting points (`complaw.laws.fit`). The feasible forms.
* `complaw.laws.twostep.TwoStepForm`: accuracy through the task loss, (r, D) -> task loss (a
  loss form) -> accuracy (a link, `complaw.laws.link`); registered there as ``two-step``.

A form declares the metric families it models (`complaw.laws.metrics`: every loss form models
``loss`` and ``task_loss``). A form's residuals and intervals live on its response `Scale` (log
L for most, L for ``additive``, logit for ``two-step``, which keeps accuracy intervals inside
(0, 1)).

The registered forms, their laws and how each is fitted: docs/laws.md, "Forms".

Eq. 1-3 are fitted with no intercept, as in the paper; ``intercept=True`` adds a free constant
``const`` (log scale: a factor e^const).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.metrics import IDENTITY, LOG, LOGIT, METRICS, Scale, get_metric
from complaw.registry import Registry

Inputs = Mapping[str, np.ndarray]
"""Arrays ``L0``, ``r`` and ``D`` of equal length."""
Params = Mapping[str, float | np.ndarray]
"""Coefficient values by name (arrays of draws broadcast against the inputs)."""

CONST = "const"
INF = math.inf

@dataclass(frozen=True)
class Coef:
    """One coefficient: its name, the symbol tables show, its bounds and starting values
    (nonlinear fits start from every combination of the forms' starting values)."""

    name: str
    symbol: str
    bounds: tuple[float, float] = (-INF, INF)
    starts: tuple[float, ...] = (0.0,)
    varies: str | None = None
    """The input that must take two values or more in the rows for a fit to identify it (D
    for the recovery coefficients); where it does not, the fit holds it at ``neutral``."""
    neutral: float = 0.0
    """Its value when the rows cannot identify it: what the law claims without evidence (c = 0:
    RFT recovers nothing)."""


@dataclass(frozen=True)
class Form:
    """What every form declares (see the module docstring); subclasses say how it predicts."""

    name: str
    equation: str
    description: str
    template: str
    """The law with ``{name}`` where each coefficient's value goes, e.g.
    ``L = L0^{alpha} (1+r)^{beta}``."""
    source: str = ""
    metrics: tuple[str, ...] = ("loss", "accuracy")
    """The metric families it models (`Metric.family`)."""
    feasible: bool = False
    """L = L0 at r = 0 for every D (whatever the coefficients)."""
    scale: Scale = LOG
    """The scale of the fit's residuals and of the intervals (log L, L or logit L)."""
    companion: str | None = None
    """A second metric whose rows (of the same group) the fit needs beside the form's own."""
    by: tuple[str, ...] = ()
    """Columns the form is always fitted per level of (on top of the user's grouping)."""
    share: tuple[str, ...] = ()
    """The coefficients shared by every group when the form is pooled across groups
    (`complaw.laws.pooling`, ``--pool``); the others vary per group, shrunk towards their
    mean."""

    @property
    def coefs(self) -> tuple[Coef, ...]:
        raise NotImplementedError

    @property
    def power_law(self) -> bool:
        """True for the multiplicative forms on which the paper's closed-form theory works."""
        return False

    def models(self, metric: str) -> bool:
        """Whether it models ``metric`` (a registered metric of one of its families)."""
        return get_metric(metric).family in self.metrics

    def modelled(self) -> list[str]:
        """The registered metrics it models."""
        return [m for m in METRICS if self.models(m)]

    def unidentified(self, data: Inputs) -> dict[int, float]:
        """The coefficients (by position) that rows ``data`` cannot identify, each with the
        value a fit holds it at (`Coef.varies`)."""
        return {i: c.neutral for i, c in enumerate(self.coefs)
                if c.varies and np.unique(np.asarray(data[c.varies])).size < 2}

    def coef_names(self, intercept: bool | None = None) -> list[str]:
        """Coefficient names in fit order."""
        return [c.name for c in self.coefs]

    def symbols(self) -> dict[str, str]:
        """Coefficient name -> the symbol tables show (``const`` included)."""
        return {CONST: "const", **{c.name: c.symbol for c in self.coefs}}

    def predict(self, coefficients: Params, data: Inputs) -> np.ndarray:
        """L predicted at the rows of ``data``."""
        raise NotImplementedError

    def split_rows(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A table's rows of the metrics this form predicts, and its companion rows (none
        without a companion)."""
        companion = (df["metric"] == self.companion).to_numpy()
        return df[~companion], df[companion]

    def check(self, coefficients: Mapping[str, float], what: str) -> None:
        """Raise unless ``coefficients`` holds every coefficient this form needs."""
        missing = [c.name for c in self.coefs if c.name not in coefficients]
        if missing:
            raise LawError(
                f"{what} (form {self.name}) lacks coefficient(s) {', '.join(missing)}; "
                f"got {', '.join(coefficients) or 'none'}"
            )

    def formula(self, coefficients: Mapping[str, float]) -> str:
        """The law written out with numbers, e.g. ``L = L0^0.98 (1+r)^-1.18 (1+1/(D+1))^-0.14``."""
        text = self.template.format_map({k: f"{v:.3g}" for k, v in coefficients.items()})
        if CONST in coefficients:
            c = coefficients[CONST]
            text += f" × {math.exp(c):.3g}" if self.scale is LOG else f" {c:+.3g}"
        return text


# ---------------------------------------------------------------- linear forms


@dataclass(frozen=True)
class Term:
    """One regressor: the coefficient it carries and how to compute it from (L0, r, D)."""

    coef: str
    symbol: str
    fn: Callable[[Inputs], np.ndarray]
    """The regressor (the design-matrix column)."""
    name: str = ""
    """The table symbol of the coefficient (α, β, ...); the coefficient name when empty."""


@dataclass(frozen=True)
class LinearForm(Form):
    """A form linear in its coefficients after a transform of L (OLS)."""

    terms: tuple[Term, ...] = ()
    offset: Callable[[Inputs], np.ndarray] | None = None
    intercept: bool = False

    @property
    def coefs(self) -> tuple[Coef, ...]:
        return tuple(Coef(t.coef, t.name or t.coef) for t in self.terms)

    @property
    def power_law(self) -> bool:
        """True for the multiplicative forms on which the paper's closed-form theory works."""
        return self.scale is LOG and self.offset is None

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
        return self.scale.to_scale(L) - self.offset_of(data)

    def link_inverse(self, eta: np.ndarray) -> np.ndarray:
        """Map the linear predictor (offset included) back to L."""
        return self.scale.from_scale(eta)

    def predict(self, coefficients: Params, data: Inputs) -> np.ndarray:
        """L predicted by this form with ``coefficients`` (``const`` optional, default 0)."""
        self.check(coefficients, "the law")
        eta = self.offset_of(data) + np.asarray(coefficients.get(CONST, 0.0), dtype=float)
        for term in self.terms:
            eta = eta + np.asarray(coefficients[term.coef]) * np.asarray(term.fn(data), float)
        return self.link_inverse(eta)


# ---------------------------------------------------------------- nonlinear forms


@dataclass(frozen=True)
class CurveForm(Form):
    """A form with any prediction function, fitted by robust least squares on residuals on its
    scale (``loss``: scipy's ``soft_l1`` or ``huber``, with scale ``f_scale`` on log L)."""

    parameters: tuple[Coef, ...] = ()
    fn: Callable[[Params, Inputs], np.ndarray] = field(default=lambda p, d: d["L0"])
    loss: str = "soft_l1"
    f_scale: float = 0.1

    @property
    def coefs(self) -> tuple[Coef, ...]:
        return self.parameters

    def predict(self, coefficients: Params, data: Inputs) -> np.ndarray:
        self.check(coefficients, "the law")
        return np.asarray(self.fn(coefficients, data), dtype=float)

    def starts(self, limit: int = 64, seed: int = 0) -> np.ndarray:
        """Starting points (rows): every combination of the coefficients' starting values, or
        ``limit`` seeded picks of them when there are more."""
        grids = [np.asarray(c.starts, dtype=float) for c in self.coefs]
        total = math.prod(len(g) for g in grids)
        if total <= limit:
            mesh = np.meshgrid(*grids, indexing="ij")
            return np.column_stack([m.ravel() for m in mesh])
        rng = np.random.default_rng(seed)
        return np.column_stack([rng.choice(g, size=limit) for g in grids])


# ---------------------------------------------------------------- the registry

FORMS: Registry[Form] = Registry("law form", LawError)


def get_form(name: str | Form) -> Form:
    """The registered form called ``name`` (a `Form` is returned as is)."""
    return name if isinstance(name, Form) else FORMS.get(name)


def forms_for(metric: str) -> list[Form]:
    """Every registered form that models ``metric``, in registration order."""
    return [f for _, f in FORMS.items() if f.models(metric)]


def default_form(metric: str, pooled: bool = False) -> Form:
    """The form ``metric`` is fitted with when none is named (`Metric.form`: the paper's);
    ``pooled``: in a fit pooled across models or a prior (`Metric.pooled`, else the same)."""
    m = get_metric(metric)
    return get_form(m.pooled if pooled and m.pooled else m.form)


def _x(d: Inputs, key: str) -> np.ndarray:
    return np.asarray(d[key], dtype=float)


def _log_l0(d: Inputs) -> np.ndarray:
    return np.log(_x(d, "L0"))


def _log_r(d: Inputs) -> np.ndarray:
    return np.log1p(_x(d, "r"))


def _log_d(d: Inputs) -> np.ndarray:
    return np.log1p(1.0 / (_x(d, "D") + 1.0))


ALPHA = Term("alpha", "log L0", _log_l0, "α")
BETA = Term("beta", "log(1+r)", _log_r, "β")
GAMMA = Term("gamma", "log(1+1/(D+1))", _log_d, "γ")
PAPER = "Sengupta et al., Compression Laws for Large Language Models (2025)"

FORMS.add("eq1", LinearForm(
    "eq1", "L = L0^alpha (1+r)^beta (1+1/(D+1))^gamma", "the paper's compression law (Eq. 1)",
    "L = L0^{alpha} (1+r)^{beta} (1+1/(D+1))^{gamma}", PAPER + ", Eq. 1",
    terms=(ALPHA, BETA, GAMMA), share=("alpha", "gamma"),
))
FORMS.add("eq2", LinearForm(
    "eq2", "L = L0^alpha (1+r)^beta", "ablation without D (Eq. 2)",
    "L = L0^{alpha} (1+r)^{beta}", PAPER + ", Eq. 2", terms=(ALPHA, BETA), share=("alpha",),
))
FORMS.add("eq3", LinearForm(
    "eq3", "L = L0^alpha (1+1/(D+1))^gamma", "ablation without r (Eq. 3)",
    "L = L0^{alpha} (1+1/(D+1))^{gamma}", PAPER + ", Eq. 3", terms=(ALPHA, GAMMA),
    share=("alpha",),
))
FORMS.add("runtime", LinearForm(
    "runtime", "S = C (1+r)^beta, C = S0 e^const",
    "runtime law (Table 4), relative to the uncompressed runtime S0 = L0",
    "S = S0 (1+r)^{beta}", PAPER + ", Table 4", metrics=("runtime",),
    terms=(BETA,), offset=_log_l0, intercept=True,
))
FORMS.add("additive", LinearForm(
    "additive", "L = alpha L0 + beta r + gamma/(D+1)",
    "additive alternative, fitted on L itself (for AIC/BIC comparison)",
    "L = {alpha} L0 + {beta} r + {gamma}/(D+1)", "complaw baseline", scale=IDENTITY,
    terms=(
        Term("alpha", "L0", lambda d: _x(d, "L0"), "α"),
        Term("beta", "r", lambda d: _x(d, "r"), "β"),
        Term("gamma", "1/(D+1)", lambda d: 1.0 / (_x(d, "D") + 1.0), "γ"),
    ), share=("alpha", "gamma"),
))


def _recovery(p: Params, d: Inputs) -> np.ndarray:
    """The share of the degradation left after D tokens of RFT, (1 + D/Dl)^-c: 1 at D = 0,
    smooth in D and saturating (Dl: the data the model "already has", as in the Rectified
    Scaling Law)."""
    return (1.0 + _x(d, "D") / np.asarray(p["Dl"])) ** (-np.asarray(p["c"]))


RECOVERY = (  # rows of one RFT size say nothing of recovery: no recovery (c = 0) is claimed
    Coef("Dl", "D_l", (1.0, 1e9), (100.0, 3000.0), varies="D", neutral=1000.0),
    Coef("c", "c", (0.0, 5.0), (0.1, 0.5), varies="D", neutral=0.0),
)

FORMS.add("degradation", CurveForm(
    "degradation", "L = L0 + A r^b (1 + D/Dl)^-c",
    "feasible: a degradation A r^b added to L0, shrunk by RFT as a power law in (D + Dl)",
    "L = L0 + {A} r^{b} (1 + D/{Dl})^-{c}",
    "P² law (Chen et al. 2025, arXiv 2411.10272): the loss after pruning and post-training is "
    "L0 plus a pruning term; Rectified Scaling Law (Lin et al. 2024, arXiv 2402.02314): a "
    "power law in D + D_l",
    metrics=("loss",), feasible=True, share=("b", "c"),
    parameters=(Coef("A", "A", (1e-6, 1e3), (1.0, 10.0, 30.0)),
                Coef("b", "b", (0.05, 10.0), (1.0, 2.0)), *RECOVERY),
    fn=lambda p, d: _x(d, "L0") + np.asarray(p["A"]) * _x(d, "r") ** np.asarray(p["b"])
    * _recovery(p, d),
))


HILL = (Coef("k", "k", (0.05, 10.0), (1.0, 3.0)), Coef("h", "h", (0.01, 5.0), (0.1, 0.3, 1.0)))


def _onset(p: Params, d: Inputs) -> np.ndarray:
    """A r^(k+1) / (r^k + h^k): about A r^(k+1) / h^k below the onset ratio h (the part the
    model can lose almost for free), about A r (linear) above it."""
    r, k, h = _x(d, "r"), np.asarray(p["k"]), np.asarray(p["h"])
    return np.asarray(p["A"]) * r ** (k + 1.0) / (r**k + h**k)


def _plateau(p: Params, d: Inputs) -> np.ndarray:
    """A r^k / (r^k + h^k), a Hill curve: 0 at r = 0, A/2 at r = h, towards A above h."""
    r, k, h = _x(d, "r"), np.asarray(p["k"]), np.asarray(p["h"])
    return np.asarray(p["A"]) * r**k / (r**k + h**k)


FORMS.add("onset", CurveForm(
    "onset", "L = L0 + A r^(k+1) / (r^k + h^k) (1 + D/Dl)^-c",
    "feasible: a degradation added to L0 that is small below an onset ratio h and grows "
    "linearly in r above it (a Hill switch times a line), shrunk by RFT as a power law in "
    "(D + Dl)",
    "L = L0 + {A} r^({k}+1) / (r^{k} + {h}^{k}) (1 + D/{Dl})^-{c}",
    "P² law (Chen et al. 2025, arXiv 2411.10272) for the additive pruning term; a Hill switch "
    "(Hill 1910) for its onset; Rectified Scaling Law (Lin et al. 2024, arXiv 2402.02314) for D",
    metrics=("loss",), feasible=True, share=("k", "h", "c"),
    parameters=(Coef("A", "A", (1e-6, 1e3), (3.0, 10.0, 30.0)), *HILL, *RECOVERY),
    fn=lambda p, d: _x(d, "L0") + _onset(p, d) * _recovery(p, d),
))


FORMS.add("plateau", CurveForm(
    "plateau", "L = L0 + A r^k / (r^k + h^k) (1 + D/Dl)^-c",
    "feasible: a degradation added to L0 that rises as a Hill curve in r (A/2 at r = h) and "
    "levels off towards A, the loss of a model pruned past use, instead of growing without "
    "bound; shrunk by RFT as a power law in (D + Dl)",
    "L = L0 + {A} r^{k} / (r^{k} + {h}^{k}) (1 + D/{Dl})^-{c}",
    "a Hill curve (Hill 1910) for the pruning term, added to L0 as in the P² law (Chen et al. "
    "2025, arXiv 2411.10272); Rectified Scaling Law (Lin et al. 2024, arXiv 2402.02314) for D",
    metrics=("loss",), feasible=True, share=("h", "c"),
    parameters=(Coef("A", "A", (1e-6, 1e3), (3.0, 10.0, 30.0)), *HILL, *RECOVERY),
    fn=lambda p, d: _x(d, "L0") + _plateau(p, d) * _recovery(p, d),
))


FORMS.add("retention", CurveForm(
    "retention", "L = L0 (1 - (1 - q) (1 - (1-r)^b) (1 + D/Dl)^-c)",
    "feasible accuracy mirror: L0 at r = 0, falling towards the floor q L0 (the chance level, "
    "as a share of L0, so tasks with different chance levels pool) as r nears 1, recovered by "
    "RFT as a power law in (D + Dl); always between q L0 and L0",
    "L = L0 (1 - (1 - {q}) (1 - (1-r)^{b}) (1 + D/{Dl})^-{c})",
    "mirror of the degradation form (P² law, Chen et al. 2025; Rectified Scaling Law, Lin "
    "et al. 2024) for a metric that falls to chance",
    metrics=("accuracy",), feasible=True, scale=LOGIT, f_scale=0.3,  # intervals inside (0, 1)
    share=("b", "c"),
    parameters=(Coef("q", "q", (0.0, 1.0), (0.4, 0.7)), Coef("b", "b", (0.05, 20.0),
                (1.0, 3.0)), *RECOVERY),
    fn=lambda p, d: _x(d, "L0") * (
        1.0 - (1.0 - np.asarray(p["q"])) * (1.0 - (1.0 - _x(d, "r")) ** np.asarray(p["b"]))
        * _recovery(p, d)),
))
