"""The planner (the paper's RQ4): which model to compress, at which ratio, with how much RFT.

Given candidate models (size, L0 per metric, a law), a target (a retention or an absolute L)
and a budget (max parameters after compression, a minimum speedup through the runtime law, an
RFT size), it scans a grid of ratios r per model, finds the least D that meets the target
(Theorem 3.1, solved exactly), and returns the feasible (model, r, D) choices ranked, with the
predicted L and its CI, and for every model without a feasible choice the reasons.

Parameters after compression are estimated as ``params * (1 - prunable_fraction * r)``
(``prunable_fraction``: the share of parameters the method's ratio applies to, 1 by default).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from complaw.errors import LawError
from complaw.laws.forms import CONST
from complaw.laws.law import Law
from complaw.laws.published import get_law, published_laws
from complaw.laws.theory import min_rft_for_value

DEFAULT_RATIOS = [round(0.05 * i, 2) for i in range(20)]


class Target(BaseModel):
    """What the compressed model must reach: ``retention`` x base, or an absolute ``value``.

    Accuracy: L >= target; loss: L <= target. The base is L0 (default) or the paper's L0^alpha.
    """

    model_config = ConfigDict(extra="forbid")
    metric: Literal["loss", "accuracy"]
    retention: float | None = Field(default=None, gt=0)
    value: float | None = Field(default=None, gt=0)
    relative_to: Literal["L0", "L0^alpha"] = "L0"

    @model_validator(mode="after")
    def _one_of(self) -> Target:
        if (self.retention is None) == (self.value is None):
            raise ValueError("give exactly one of target.retention and target.value")
        return self


class Budget(BaseModel):
    """Limits on the compressed model: parameters, speedup, RFT size (max D)."""

    model_config = ConfigDict(extra="forbid")
    max_params: float | None = Field(default=None, gt=0)
    min_speedup: float | None = Field(default=None, gt=0)
    rft_tokens: float = Field(default=0.0, ge=0)


class Candidate(BaseModel):
    """A model that may be compressed. ``law``/``runtime_law`` default to its published laws
    (``paper:NAME:extrinsic|intrinsic``, ``paper:runtime:NAME``) or the all-model ones."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: float = Field(gt=0)
    L0: dict[str, float]
    law: str | None = None
    runtime_law: str | None = None
    prunable_fraction: float = Field(default=1.0, gt=0, le=1)


class PlanSpec(BaseModel):
    """A planning problem (the YAML file of ``complaw plan``)."""

    model_config = ConfigDict(extra="forbid")
    target: Target
    budget: Budget = Budget()
    candidates: list[Candidate] = Field(min_length=1)
    ratios: list[float] = Field(default_factory=lambda: list(DEFAULT_RATIOS), min_length=1)
    objective: Literal["best", "smallest", "fastest"] = "best"
    level: float = Field(default=0.95, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> PlanSpec:
        bad = [r for r in self.ratios if not 0 <= r < 1]
        if bad:
            raise ValueError(f"ratios must be in [0, 1); got {bad}")
        for c in self.candidates:
            if self.target.metric not in c.L0:
                raise ValueError(
                    f"candidate {c.name!r} has no L0 for metric {self.target.metric!r} "
                    f"(it has {', '.join(c.L0) or 'none'})"
                )
        return self


@dataclass
class Choice:
    """One feasible (model, r, D): D is the RFT budget, at which L (and its CI) is predicted;
    D_needed is the least RFT that already meets the target."""

    model: str
    r: float
    D: float
    D_needed: float
    params_after: float
    speedup: float | None
    L: float
    L_low: float | None
    L_high: float | None
    target: float
    law: str


@dataclass
class Plan:
    """Ranked feasible choices, and why each model without one has none."""

    objective: str
    target: str
    level: float = 0.95
    choices: list[Choice] = field(default_factory=list)
    infeasible: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def clean(d: dict[str, Any]) -> dict[str, Any]:
            return {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()
            }

        return {
            "objective": self.objective,
            "target": self.target,
            "level": self.level,
            "choices": [clean(asdict(c)) for c in self.choices],
            "infeasible": self.infeasible,
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
    kind = "extrinsic" if metric == "accuracy" else "intrinsic"
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


def plan(spec: PlanSpec) -> Plan:
    """Solve a planning problem: feasible choices ranked by ``spec.objective``.

    ``best``: best predicted L with the full RFT budget; ``smallest``: fewest parameters;
    ``fastest``: largest speedup. ``L`` and its CI are predicted at D = the RFT budget;
    ``D_needed`` is the least RFT that meets the target (rounded up).
    """
    t = spec.target
    acc = t.metric == "accuracy"
    better = ">=" if acc else "<="
    target_desc = (
        f"{t.metric} {better} {t.retention:g} x {t.relative_to}"
        if t.retention is not None
        else f"{t.metric} {better} {t.value:g}"
    )
    out = Plan(spec.objective, target_desc, spec.level)
    budget = spec.budget
    for c in spec.candidates:
        law = get_law(c.law or _default_law(c.name, t.metric))
        if law.metric != t.metric:
            raise LawError(
                f"law {law.name!r} of candidate {c.name!r} is a {law.metric} law; "
                f"the target is {t.metric}"
            )
        if not law.form_obj.power_law:
            raise LawError(
                f"law {law.name!r} has form {law.form}; the planner needs eq1, eq2 or eq3"
            )
        L0 = float(c.L0[t.metric])
        base = L0 if t.relative_to == "L0" else L0 ** law.coefficients["alpha"]
        target = t.value if t.value is not None else t.retention * base
        runtime = None
        if budget.min_speedup is not None or c.runtime_law:
            runtime = _runtime_law(c)
        reasons: dict[str, list[float]] = {}
        grid = list(spec.ratios)
        for r in grid:
            params_after = c.params * (1.0 - c.prunable_fraction * r)
            speedup = _speedup(runtime, r) if runtime is not None else None
            why = []
            if budget.max_params is not None and params_after > budget.max_params:
                why.append(f"parameters after compression > max_params {budget.max_params:.3g}")
            if budget.min_speedup is not None and speedup < budget.min_speedup:
                why.append(f"speedup < min_speedup {budget.min_speedup:g}")
            d_min = min_rft_for_value(law, L0, r, target)
            if not math.isfinite(d_min):
                why.append(f"{t.metric} target {target:.4g} unreachable with any RFT")
            elif d_min > budget.rft_tokens:
                why.append(f"needs more RFT than rft_tokens {budget.rft_tokens:g}")
            for reason in why:
                reasons.setdefault(reason, []).append(r)
            if why:
                continue
            pred = law.predict(L0, r, budget.rft_tokens, level=spec.level)
            out.choices.append(
                Choice(
                    model=c.name,
                    r=float(r),
                    D=float(budget.rft_tokens),
                    D_needed=float(math.ceil(d_min)),
                    params_after=float(params_after),
                    speedup=speedup,
                    L=float(pred.L[0]),
                    L_low=None if pred.low is None else float(pred.low[0]),
                    L_high=None if pred.high is None else float(pred.high[0]),
                    target=float(target),
                    law=law.name,
                )
            )
        if not any(ch.model == c.name for ch in out.choices):
            out.infeasible[c.name] = "; ".join(
                f"{why} for {_ranges(rs, grid)}" for why, rs in reasons.items()
            )
    sign = -1.0 if acc else 1.0
    keys = {
        "best": lambda ch: (sign * ch.L, ch.params_after),
        "smallest": lambda ch: (ch.params_after, sign * ch.L),
        "fastest": lambda ch: (-(ch.speedup or 1.0), sign * ch.L),
    }
    out.choices.sort(key=keys[spec.objective])
    return out
