"""Checking a plan by running it: `verify_plan` compresses the top choice at its planned r,
recovers it with its planned D and evaluates it, as a one-model study with the settings of the
study the plan's laws were fitted on; then it compares the measured value with the prediction
and its interval, and with the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from complaw.errors import LawError
from complaw.experiment.folder import StudyFolder
from complaw.experiment.records import law_table
from complaw.io import write_json_atomic
from complaw.laws.law import Law
from complaw.laws.planner import Choice, PlanResult, PlanSpec
from complaw.study.runner import RunSummary, run_study
from complaw.study.spec import Spec, load_spec, parse_spec

VERIFY_FILE = "verify.json"


def _source_spec(spec: PlanSpec) -> Spec:
    """The settings of the study the plan's laws come from: its records', else its prior's."""
    source = spec.records or (spec.prior.study if spec.prior else None)
    file = StudyFolder(source or "").spec
    if not source or not file.is_file():
        raise LawError(
            "--verify runs the top choice with the settings of the study its laws were fitted "
            f"on: give the plan `records:` (or `prior: {{study: ...}}`) a study folder with "
            f"{StudyFolder.SPEC} (got {source!r})"
        )
    return load_spec(file)


def verification_spec(spec: PlanSpec, choice: Choice) -> dict[str, Any]:
    """The one-model study that checks ``choice``: the source study's settings with its model,
    its method (``where: {method: ...}`` when the study has several), ratio r, recovery size D
    (rounded up to whole samples) and the evaluation of the target's dataset."""
    source = _source_spec(spec).model_dump(mode="json")
    candidate = next(c for c in spec.candidates if c.name == choice.model)
    where = candidate.where
    methods = [m for m in source["methods"] if m["name"] == where.get("method", m["name"])]
    if len(methods) != 1:
        raise LawError(
            f"the study has methods {', '.join(m['name'] for m in source['methods'])}; pin one "
            "in the candidate's where: {method: ...}"
        )
    kind = spec.target.measure.stage
    # the planned (r, D) whatever the source study restricted this evaluation to
    evaluation = dict(source["evaluations"][kind] or {}, recovered=True, ratios=None, models=None)
    if kind == "intrinsic" and "dataset" in where:
        evaluation["data"] = [where["dataset"]]
    recovery = source.get("recovery")
    if recovery is not None:
        samples = math.ceil(choice.D_needed / recovery["seq_len"])
        recovery = dict(recovery, datasets=recovery["datasets"][:1],
                        samples=[samples] if samples else [0])
    elif choice.D_needed > 0:
        raise LawError("the plan needs RFT but the source study has no recovery settings")
    methods[0] = dict(methods[0], ratios=None, models=None)
    return dict(source, name=f"verify-{choice.model}", models=[choice.model],
                seeds=source["seeds"][:1], ratios=[choice.r], methods=methods,
                recovery=recovery, evaluations={kind: evaluation}, resources={})


@dataclass(frozen=True)
class Verification:
    """A plan's top choice, run (`verify_plan`): its prediction (with its ``level``
    prediction ``interval``) against the ``measured`` L, and the ``target``."""

    plan: PlanResult
    choice: Choice
    law: Law
    dataset: str
    method: str
    D: float
    study: str
    predicted: float
    interval: tuple[float, float] | None
    level: float
    measured: float
    L0: float
    target: float
    target_met: bool

    @property
    def in_interval(self) -> bool | None:
        """Whether the measured L lies in the prediction interval (None without one)."""
        return None if self.interval is None else bool(
            self.interval[0] <= self.measured <= self.interval[1])

    @property
    def error_pct(self) -> float:
        """|predicted - measured| / measured, in %."""
        return 100.0 * abs(self.predicted - self.measured) / self.measured

    def to_dict(self) -> dict[str, Any]:
        """The record of ``verify.json``."""
        return {
            "plan": {"target": self.plan.target, "objective": self.plan.objective,
                     "choice": self.choice.to_dict(), "law": self.law.to_dict()},
            "run": {"model": self.choice.model, "dataset": self.dataset, "method": self.method,
                    "r": self.choice.r, "D": self.D, "study": self.study},
            "predicted": {"L": self.predicted,
                          "interval": None if self.interval is None else list(self.interval),
                          "level": self.level},
            "measured": {"L": self.measured, "L0": self.L0},
            "target": self.target,
            "target_met": self.target_met,
            "in_interval": self.in_interval,
            "error_pct": self.error_pct,
        }


def verify_plan(spec: PlanSpec, result: PlanResult, out: str | Path,
                data_dir: str | Path | None = None, progress: bool = True) -> Verification:
    """Run the top choice of ``result`` into the study folder ``out`` and write its
    `Verification` to ``out/verify.json``: predicted against measured, whether the target was
    met, and whether the measured value lies in the prediction interval."""
    if not result.choices:
        raise LawError("the plan has no feasible choice to verify")
    choice = result.choices[0]
    candidate = next(c for c in spec.candidates if c.name == choice.model)
    study = parse_spec(verification_spec(spec, choice), "the verification study")
    D = float((study.recovery.samples[0] * study.recovery.seq_len) if study.recovery else 0)
    summary: RunSummary = run_study(study, out, data_dir=data_dir, progress=progress)
    if summary.failed:
        raise LawError(f"the verification study failed: {summary.failures[0][1][:300]}")
    rows = law_table(out)
    metric = spec.target.metric
    rows = rows[(rows["metric"] == metric) & (rows["r"] == choice.r) & (rows["D"] == D)]
    for key, value in candidate.where.items():
        if key in rows.columns:
            rows = rows[rows[key].astype(str) == str(value)]
    if len(rows) != 1:
        raise LawError(f"the verification study gave {len(rows)} {metric} rows at r = "
                       f"{choice.r:g}, D = {D:g}; pin the dataset in the candidate's where")
    row = rows.iloc[0]
    law = result.laws[choice.model]
    pred = law.predict(choice.L0, choice.r, D, level=spec.level)
    measured, L0 = float(row["L"]), float(row["L0"])
    target = spec.target.threshold(L0, law)
    met = spec.target.measure.meets(measured, target)
    found = Verification(
        result, choice, law, str(row["dataset"]), str(row["method"]), D, str(out),
        float(pred.L[0]), None if pred.pi_low is None
        else (float(pred.pi_low[0]), float(pred.pi_high[0])), spec.level, measured, L0,
        target, bool(met))
    write_json_atomic(Path(out) / VERIFY_FILE, found.to_dict())
    return found
