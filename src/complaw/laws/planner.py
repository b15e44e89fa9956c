"""The planner (the paper's RQ4): which model to compress, at which ratio, with how much RFT.

Given candidate models (size, L0 per metric, a law), a target (by default relative to L0:
loss <= L0 / sigma, accuracy >= sigma L0) and a budget (max parameters after compression, a
minimum speedup through the runtime law, an RFT size), it scans a grid of ratios r per model,
finds the least D that meets the target (`complaw.laws.theory.least_rft`, for any form), and
returns the feasible (model, r, D) choices ranked, with the predicted L and its confidence and
prediction intervals, and for every model without a feasible choice the reasons.

A candidate's law is a published or saved law (``law``), or, when the plan names ``records``,
fitted on the candidate's rows there: the form with the lowest held-out MAPE on ``holdout``
unless ``form`` names one. No choice may predict that a compressed model beats its L0: such a
choice (only an infeasible form can give it) is refused, with the reason.

Parameters after compression are estimated as ``params * (1 - prunable_fraction * r)``
(``prunable_fraction``: the share of parameters the method's ratio applies to, 1 by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from complaw.errors import LawError
from complaw.laws.forms import CONST, get_form
from complaw.laws.holdout import HeldOutSummary
from complaw.laws.law import Law
from complaw.laws.metrics import Metric, get_metric
from complaw.laws.published import get_law, published_laws
from complaw.laws.theory import least_rft

if TYPE_CHECKING:
    from complaw.laws.pooling import PooledFit

DEFAULT_RATIOS = [round(0.05 * i, 2) for i in range(20)]


class Target(BaseModel):
    """What the compressed model must reach: ``sigma`` (loss <= base / sigma, accuracy >=
    sigma x base), ``retention`` x base, or an absolute ``value``.

    A metric where higher is better (accuracy): L >= target; else (loss): L <= target. The base
    is L0 (default) or the paper's L0^alpha (``relative_to: L0^alpha``, for laws with an alpha).
    """

    model_config = ConfigDict(extra="forbid")
    metric: str
    sigma: float | None = Field(default=None, gt=0, le=1)
    retention: float | None = Field(default=None, gt=0)
    value: float | None = Field(default=None, gt=0)
    relative_to: Literal["L0", "L0^alpha"] = "L0"

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        return get_metric(value).name  # a LawError names the registered metrics

    @property
    def measure(self) -> Metric:
        """The target's metric."""
        return get_metric(self.metric)

    @model_validator(mode="after")
    def _one_of(self) -> Target:
        if sum(v is not None for v in (self.sigma, self.retention, self.value)) != 1:
            raise ValueError("give exactly one of target.sigma, target.retention and "
                             "target.value")
        return self

    def factor(self) -> float | None:
        """The multiple of the base the target is (None for an absolute value)."""
        if self.sigma is not None:
            return float(self.measure.sigma(self.sigma))
        return self.retention

    def threshold(self, L0: float, law: Law) -> float:
        """The value L must reach for a model with uncompressed value ``L0`` under ``law``."""
        if self.value is not None:
            return self.value
        if self.relative_to == "L0^alpha" and "alpha" not in law.coefficients:
            raise LawError(f"relative_to L0^alpha needs a law with an alpha; {law.name!r} "
                           f"({law.form}) has none: use relative_to: L0")
        return self.factor() * (L0 if self.relative_to == "L0" else
                                L0 ** law.coefficients["alpha"])

    def describe(self) -> str:
        better = ">=" if self.measure.higher_is_better else "<="
        if self.value is not None:
            return f"{self.metric} {better} {self.value:g}"
        if self.sigma is not None:
            op = "x" if self.measure.higher_is_better else "/"
            return f"{self.metric} {better} {self.relative_to} {op} {self.sigma:g}"
        return f"{self.metric} {better} {self.retention:g} x {self.relative_to}"


class Constraints(BaseModel):
    """Limits on the compressed model (the plan's ``budget:``): parameters, speedup, RFT size
    (max D)."""

    model_config = ConfigDict(extra="forbid")
    max_params: float | None = Field(default=None, gt=0)
    min_speedup: float | None = Field(default=None, gt=0)
    rft_tokens: float = Field(default=0.0, ge=0)


class Candidate(BaseModel):
    """A model that may be compressed. Its law: ``law`` (a published name or FILE.json#NAME);
    else, with the plan's ``prior``, the prior's law updated by its rows in the records (if
    any; `PlanPrior`); else, with the plan's ``records``, fitted on its rows there (``model`` =
    its name and every ``where`` column = value): ``form``, or the form with the lowest
    held-out MAPE; else its published law (``paper:NAME:extrinsic|intrinsic``) or the
    all-model one. ``L0`` defaults to the value in its rows. ``runtime_law`` defaults to
    ``paper:runtime:NAME`` or ``paper:runtime:all``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: float | None = Field(default=None, gt=0)
    L0: dict[str, float] = {}
    law: str | None = None
    form: str | None = None
    where: dict[str, str] = {}
    runtime_law: str | None = None
    prunable_fraction: float = Field(default=1.0, gt=0, le=1)


class PlanPrior(BaseModel):
    """The laws of candidates the records have not run (the plan's ``prior:``): the pooled law
    of another study's models (`complaw.laws.prior`), updated by the candidate's own rows in
    the plan's ``records`` where it has any; with none, the population law at its L0."""

    model_config = ConfigDict(extra="forbid")
    study: str
    """A study folder or CSV of other models (a candidate's own rows there are left out, and
    so are other methods and calibrations than its ``where`` names)."""
    form: str | None = None
    """The pooled form (default: the metric's pooled form, plateau for loss)."""
    share: list[str] | None = None
    """The coefficients shared by the models (default: the form's declared ones)."""
    trend: list[str] = []
    """Per-model coefficients whose mean follows model size (N0): the candidate needs rows in
    the records, which carry its size."""


class PlanSpec(BaseModel):
    """A planning problem (the YAML file of ``complaw plan``)."""

    model_config = ConfigDict(extra="forbid")
    target: Target
    budget: Constraints = Constraints()
    candidates: list[Candidate] = Field(min_length=1)
    ratios: list[float] = Field(default_factory=lambda: list(DEFAULT_RATIOS), min_length=1)
    objective: Literal["best", "smallest", "fastest"] = "best"
    level: float = Field(default=0.95, gt=0, lt=1)
    assured: bool = False
    """Meet the target with the worse end of the ``level`` prediction interval, not with the
    point prediction (laws fitted on records; published laws have no interval)."""
    records: str | None = None
    """A study folder or CSV whose rows the candidates' laws are fitted on."""
    holdout: str = "r:0.5"
    """The held-out split that picks each candidate's best form (with ``records``)."""
    prior: PlanPrior | None = None
    """Candidates without a ``law`` get theirs from this prior, not from their rows alone."""

    @model_validator(mode="after")
    def _check(self) -> PlanSpec:
        bad = [r for r in self.ratios if not 0 <= r < 1]
        if bad:
            raise ValueError(f"ratios must be in [0, 1); got {bad}")
        for c in self.candidates:
            if self.target.metric not in c.L0 and self.records is None:
                raise ValueError(
                    f"candidate {c.name!r} has no L0 for metric {self.target.metric!r} "
                    f"(it has {', '.join(c.L0) or 'none'}); give it, or the plan's records"
                )
            if self.budget.max_params is not None and c.params is None:
                raise ValueError(f"candidate {c.name!r} needs params for budget.max_params")
        return self


@dataclass(frozen=True)
class Choice:
    """One feasible (model, r, D): D is the RFT budget, at which L (its CI and prediction
    interval) is predicted; D_needed is the least RFT that already meets the target."""

    model: str
    r: float
    D: float
    D_needed: float
    params_after: float | None
    speedup: float | None
    L: float
    L_low: float | None
    L_high: float | None
    target: float
    law: str
    L0: float = math.nan
    form: str = ""
    pi_low: float | None = None
    pi_high: float | None = None
    heldout: HeldOutSummary | None = None
    """The held-out error of the law's form on the plan's split (laws fitted on records)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in vars(self).items()}
        return dict(out, heldout=None if self.heldout is None else self.heldout.to_dict())


@dataclass
class PlanResult:
    """Ranked feasible choices, and why each model without one has none."""

    objective: str
    target: str
    level: float = 0.95
    choices: list[Choice] = field(default_factory=list)
    infeasible: dict[str, str] = field(default_factory=dict)
    laws: dict[str, Law] = field(default_factory=dict)
    """Each candidate's law, by model name."""
    doubts: dict[str, str] = field(default_factory=dict)
    """Why a candidate's choices deserve doubt, by model name: the report would not call its
    pinned law best, or its law is a prior's planned on the point prediction."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "target": self.target,
            "level": self.level,
            "choices": [c.to_dict() for c in self.choices],
            "infeasible": self.infeasible,
            "doubts": self.doubts,
        }


def load_plan(path: str | Path) -> PlanSpec:
    """Read and validate a plan YAML file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LawError(f"cannot read plan {str(path)!r}: {exc}") from None
    return parse_plan(raw, str(path))


def parse_plan(raw: Any, where: str = "plan") -> PlanSpec:
    """Validate a plan given as a dict; errors name the bad field."""
    try:
        return PlanSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}" for e in exc.errors()
        )
        raise LawError(f"invalid {where}: {problems}") from None


def _default_law(name: str, metric: str) -> str:
    known = {law.name for law in published_laws()}
    kind = get_metric(metric).stage
    own = f"paper:{name.lower()}:{kind}"
    return own if own in known else f"paper:all:{kind}"


def _runtime_law(c: Candidate) -> Law:
    known = {law.name for law in published_laws()}
    name = c.runtime_law or (
        f"paper:runtime:{c.name.lower()}"
        if f"paper:runtime:{c.name.lower()}" in known
        else "paper:runtime:all"
    )
    law = get_law(name)
    if law.metric != "runtime":
        raise LawError(f"runtime_law {name!r} of {c.name!r} is a {law.metric} law, not runtime")
    return law


def _speedup(law: Law, r: float) -> float:
    """S0 / S under the runtime law S = S0 e^const (1+r)^beta."""
    c = law.coefficients
    return float(np.exp(-c.get(CONST, 0.0)) * (1.0 + r) ** (-c["beta"]))


def _ranges(rs: list[float], grid: list[float]) -> str:
    """``rs`` as runs of consecutive grid ratios, e.g. ``r = 0..0.2, 0.5``."""
    runs: list[list[float]] = []
    for r in rs:
        if runs and grid.index(r) == grid.index(runs[-1][-1]) + 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    parts = [f"{run[0]:g}" if len(run) == 1 else f"{run[0]:g}..{run[-1]:g}" for run in runs]
    return "r = " + ", ".join(parts)


def _candidate_rows(c: Candidate, metric: str, table: pd.DataFrame | None) -> pd.DataFrame:
    """The candidate's rows in the records (model = its name, its ``where``), with the
    companion rows ``metric``'s forms need; none without records."""
    from complaw.laws.select import with_companions

    if table is None:
        return pd.DataFrame(columns=["model", "metric", "dataset", "L0", "L", "r", "D"])
    rows = with_companions(table[table["model"].astype(str) == c.name], metric)
    for key, value in c.where.items():
        if key not in rows.columns:
            raise LawError(f"candidate {c.name!r}: where {key}: no such column in the records")
        rows = rows[rows[key].astype(str) == str(value)]
    return rows


def _prior_law(spec: PlanSpec, c: Candidate, metric: str, own: pd.DataFrame,
               prior: pd.DataFrame, fits: dict[tuple, PooledFit]) -> Law:
    """The candidate's law from ``prior`` (the law table of ``spec.prior.study``, its own
    model left out, only the method and calibration its ``where`` names) updated by its
    ``own`` rows of ``metric`` (none: the population law); ``fits`` keeps each pooled fit
    (candidates may share a model and a method)."""
    from complaw.laws.pooling import size_of
    from complaw.laws.prior import check_match, prior_fit

    p = spec.prior
    if p.form and get_form(p.form).companion:
        raise LawError(f"prior.form {p.form} is fitted in steps, which a plan's prior does not "
                       "pool; name a form fitted in one step (complaw forms lists them)")
    others = prior[prior["model"].astype(str) != c.name]
    if len(own):
        check_match(others, own, metric)
    else:  # what the candidate's where names must be in the prior
        probe = {k: v for k, v in c.where.items() if k in ("method", "dataset")}
        check_match(others, pd.DataFrame([{**probe, "metric": metric}]), metric, tuple(probe))
    for key in ("method", "calibration"):  # the law of the candidate's method, on any dataset
        if key in c.where and key in others.columns:
            others = others[others[key].astype(str) == str(c.where[key])]
    key = (c.name, *(c.where.get(k) for k in ("method", "calibration")))
    if key not in fits:
        fits[key] = prior_fit(others, metric, p.form, True if p.share is None else p.share,
                              p.trend)
    fitted = fits[key]
    size = size_of(own) if len(own) else None
    if fitted.pooling.trend and size is None:
        raise LawError(f"candidate {c.name!r}: the prior's {', '.join(fitted.pooling.trend)} "
                       f"follow model size, and the records hold no rows of {c.name} that give "
                       f"its size (N0); run its baseline into the records or drop prior.trend")
    return fitted.update(own.reset_index(drop=True), c.name, size)


def _candidate_law(
    spec: PlanSpec, c: Candidate, metric: str, table: pd.DataFrame | None,
    prior: pd.DataFrame | None, fits: dict[tuple, PooledFit],
) -> tuple[Law, float | None, HeldOutSummary | None, str | None]:
    """The candidate's law (starting from its base task loss, where the records hold one), its
    L0 from the records (None when not read there), the held-out error of the law's form
    (None unless fitted on the records here) and, for a form the plan pins, why the report
    would not call it best (None: it would, or nothing to judge by). With ``prior`` (the law
    table of the plan's prior), a candidate without a ``law`` gets `_prior_law` (``fits``:
    its cache of pooled fits)."""
    if c.law or (table is None and prior is None):
        return get_law(c.law or _default_law(c.name, metric)), None, None, None
    from complaw.laws.select import best_form, compare, doubt, fit

    rows = _candidate_rows(c, metric, table)
    if rows.empty and prior is None:
        raise LawError(f"candidate {c.name!r}: no {metric} rows in {spec.records} with model = "
                       f"{c.name} and {c.where or 'no other filter'}")
    own = rows[rows["metric"] == metric]
    L0s = sorted(set(own["L0"].round(12)))
    if len(L0s) > 1 and metric not in c.L0:
        raise LawError(
            f"candidate {c.name!r}: its rows hold {len(L0s)} values of L0 (datasets "
            f"{', '.join(sorted(set(own['dataset'])))}); pin one with where: {{dataset: ...}}"
        )
    if prior is not None:
        if not L0s and metric not in c.L0:
            raise LawError(f"candidate {c.name!r}: no {metric} rows in the records to read its "
                           f"L0 from; give it (L0: {{{metric}: ...}}, its baseline's value)")
        law = _prior_law(spec, c, metric, own, prior, fits)
        return law, (L0s[0] if L0s else None), None, None
    why = None
    if c.form:
        forms = [c.form, get_metric(metric).reference or c.form]
        judged = compare(rows, list(dict.fromkeys(forms)), holdout=spec.holdout, level=spec.level)
        mine = [f for f in judged.fits if f.form == c.form]
        # the comparison's own fit of the pinned form; where it has none or several, fit() says why
        found = (mine[0] if len(mine) == 1
                 else fit(rows, c.form, holdout=[spec.holdout], level=spec.level).only())
        why = doubt(judged, found)
    else:
        found = best_form(rows, spec.holdout, spec.level, metric=metric)
    T0s = own["T0"].dropna().unique() if "T0" in own.columns else []
    law = replace(found.law(), T0=float(T0s[0])) if len(T0s) == 1 else found.law()
    return law, L0s[0], found.heldout.get(spec.holdout), why


def plan(spec: PlanSpec, table: pd.DataFrame | None = None,
         prior: pd.DataFrame | None = None) -> PlanResult:
    """Solve a planning problem: feasible choices ranked by ``spec.objective``.

    ``best``: best predicted L with the full RFT budget; ``smallest``: fewest parameters;
    ``fastest``: largest speedup. ``L`` and its intervals are predicted at D = the RFT budget;
    ``D_needed`` is the least RFT that meets the target (rounded up). ``table`` is the law
    table of ``spec.records`` (`complaw.experiment.records.load_law_table`), which a plan with
    records needs; ``prior`` that of ``spec.prior.study``, which a plan with a prior needs.
    """
    if spec.records is not None and table is None:
        raise LawError(f"the plan fits its laws on records {spec.records!r}: pass their law "
                       "table (complaw.experiment.records.load_law_table)")
    if spec.prior is not None and prior is None:
        raise LawError(f"the plan's prior is {spec.prior.study!r}: pass its law table "
                       "(complaw.experiment.records.load_law_table)")
    t = spec.target
    sign = t.measure.sign
    assured = f", {spec.level:.0%} assured" if spec.assured else ""
    out = PlanResult(spec.objective, t.describe() + assured, spec.level)
    budget, fits = spec.budget, {}
    for c in spec.candidates:
        law, rows_L0, heldout, why_not_best = _candidate_law(spec, c, t.metric, table, prior,
                                                             fits)
        out.laws[c.name] = law
        if why_not_best:
            out.doubts[c.name] = f"planned on {law.form}, which the plan pins: {why_not_best}"
        elif spec.prior is not None and not c.law and not spec.assured:
            out.doubts[c.name] = (
                f"its law is the prior's ({spec.prior.study}; {law.source}): the point "
                "prediction does not allow for how far this model may differ from the prior's "
                "models; plan it with assured: true, whose interval does (docs/laws.md)")
        if law.metric != t.metric:
            raise LawError(
                f"law {law.name!r} of candidate {c.name!r} is a {law.metric} law; "
                f"the target is {t.metric}"
            )
        L0 = float(c.L0[t.metric]) if t.metric in c.L0 else float(rows_L0)
        target = t.threshold(L0, law)
        runtime = None
        if budget.min_speedup is not None or c.runtime_law:
            runtime = _runtime_law(c)
        reasons: dict[str, list[float]] = {}
        grid = list(spec.ratios)
        for r in grid:
            params_after = None if c.params is None else c.params * (1.0 - c.prunable_fraction * r)
            speedup = _speedup(runtime, r) if runtime is not None else None
            why = []
            if budget.max_params is not None and params_after > budget.max_params:
                why.append(f"parameters after compression > max_params {budget.max_params:.3g}")
            if budget.min_speedup is not None and speedup < budget.min_speedup:
                why.append(f"speedup < min_speedup {budget.min_speedup:g}")
            pred = law.predict(L0, r, budget.rft_tokens, level=spec.level)
            L = float(pred.L[0])
            if sign * (L - L0) < 0:
                why.append(f"the law ({law.form}) predicts a compressed model better than L0; "
                           "use a feasible form")
            d_min = least_rft(law, L0, r, target, budget.rft_tokens,
                              spec.level if spec.assured else None)
            if not why and not math.isfinite(d_min):
                how = f"with {spec.level:.0%} assurance " if spec.assured else ""
                why.append(f"{t.metric} target {target:.4g} not reached {how}with rft_tokens "
                           f"{budget.rft_tokens:g}")
            for reason in why:
                reasons.setdefault(reason, []).append(r)
            if why:
                continue

            def first(x):
                return None if x is None else float(x[0])

            out.choices.append(
                Choice(
                    model=c.name, r=float(r), D=float(budget.rft_tokens),
                    D_needed=float(math.ceil(d_min)),
                    params_after=None if params_after is None else float(params_after),
                    speedup=speedup, L=L, L_low=first(pred.low), L_high=first(pred.high),
                    target=float(target), law=law.name, L0=L0, form=law.form,
                    pi_low=first(pred.pi_low), pi_high=first(pred.pi_high), heldout=heldout,
                )
            )
        if not any(ch.model == c.name for ch in out.choices):
            out.infeasible[c.name] = "; ".join(
                f"{why} for {_ranges(rs, grid)}" for why, rs in reasons.items()
            )
    keys = {
        "best": lambda ch: (sign * ch.L, ch.params_after or 0.0),
        "smallest": lambda ch: (ch.params_after if ch.params_after is not None else -ch.r,
                                sign * ch.L),
        "fastest": lambda ch: (-(ch.speedup or 1.0), sign * ch.L),
    }
    out.choices.sort(key=keys[spec.objective])
    return out
