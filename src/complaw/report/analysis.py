"""The fits a report shows, computed once per study and shared by its tables and figures.

`Analysis.fits(kind, form, by, subset)` fits one form on one kind of row (``intrinsic``: test
loss, ``extrinsic``: mean zero-shot accuracy, ``tasks``: each task's accuracy and task loss,
``runtime``), one law per group of ``by``. A group that cannot be fitted (too few rows, a
constant regressor, ...) is kept as a reason, not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from complaw.errors import LawError
from complaw.io import write_json_atomic
from complaw.laws.fit import FitResult
from complaw.laws.forms import get_form
from complaw.laws.metrics import stage_metric
from complaw.laws.select import Comparison, compare, credible_best, fit, with_companions
from complaw.report.study import Study, extrinsic, intrinsic, is_mean, main_subset


def _tasks(df: pd.DataFrame) -> pd.DataFrame:
    """Each task's extrinsic L and its companion (task loss) rows, on the tasks where the
    companion was measured: the two-step law's rows."""
    accuracy = stage_metric("extrinsic").name
    df = with_companions(df[~is_mean(df["dataset"])], accuracy)
    return df[df["dataset"].isin(df.loc[df["metric"] != accuracy, "dataset"])]


KINDS = {"intrinsic": intrinsic, "extrinsic": extrinsic, "tasks": _tasks,
         "runtime": lambda df: df[df["metric"] == "runtime"]}
"""Kind of row -> its rows of a law table."""
HEADLINE = ("intrinsic", "extrinsic")
"""The kinds of row that are a stage's L (`complaw.laws.metrics.stage_metric`), in the order
the paper's tables show them."""
LAW_KINDS = (*HEADLINE, "tasks")
"""The kinds of row whose laws the report compares and plans with."""
POWER_FORMS = ("eq1", "eq2", "eq3")
"""The paper's power laws, in the order a report falls back on them when Eq. 1 cannot be
fitted (e.g. D never varies and the study has one L0)."""
SIGMAS = (0.8, 0.9)
"""The fractions of L0 a report asks a compressed model to keep (the paper's σ; a loss keeps
σ when L <= L0 / σ: `complaw.laws.metrics.Metric.sigma`)."""
RANK_SPLIT = "r:0.5"
"""The held-out split that ranks forms in a report (extrapolation in compression)."""
KIND_COLUMN = "compression"
"""Derived column: ``calibration-free`` or ``calibrated`` (the paper's Table 3 groups)."""


@dataclass
class FitSet:
    """The fits of one form on one kind of row, one per group; and the groups left out."""

    kind: str
    form: str
    by: tuple[str, ...]
    subset: str
    results: list[FitResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    single_D: bool = False
    """D takes one value in these rows: a fitted γ is then only a constant factor."""


def _label(by: Sequence[str], key: Any) -> str:
    values = key if isinstance(key, tuple) else (key,)
    return " ".join(f"{k}={v}" for k, v in zip(by, values, strict=True)) or "all rows"


class Analysis:
    """Fits of a study, cached by (kind, form, by, subset)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        laws = study.laws.copy()
        laws[KIND_COLUMN] = laws["calibration"].map(
            lambda c: "calibration-free" if c == "none" else "calibrated"
        )
        self.laws = laws
        self._cache: dict[tuple, FitSet] = {}
        self._compared: dict[tuple, Comparison | None] = {}
        self.splits = [RANK_SPLIT, "D"] + (["model"] if laws["model"].nunique() > 1 else [])
        """The held-out splits every fit of the report carries (the first ranks forms)."""
        self.laws_file: Path | None = None
        """Where the fitted laws were written (set by the report builder; the planner reads
        laws by name from it)."""

    def rows(self, kind: str, subset: str = "main") -> tuple[pd.DataFrame, str]:
        """Law-table rows of ``kind`` (intrinsic, extrinsic, runtime) and a phrase naming them.

        ``subset``: ``main`` = calibration-free rows when there are any (the paper's Tables 1,
        2, 4, 6), ``all`` = every row.
        """
        if kind not in KINDS:
            raise LawError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        df = KINDS[kind](self.laws)
        if subset == "all":
            return df, "all rows"
        return main_subset(df)

    def fits(
        self, kind: str, form: str = "eq1", by: Sequence[str] = (), subset: str = "main"
    ) -> FitSet:
        """The fits of ``form`` on ``kind`` rows, one per group of ``by`` (cached)."""
        key = (kind, form, tuple(by), subset)
        if key in self._cache:
            return self._cache[key]
        df, phrase = self.rows(kind, subset)
        out = FitSet(kind, form, tuple(by), phrase, single_D=df["D"].nunique() == 1)
        if df.empty:
            out.skipped.append(("all rows", f"no {kind} rows in this study"))
        parts = df.groupby(list(by), sort=True) if by else [((), df)] if len(df) else []
        for group, part in parts:
            try:
                out.results.extend(fit(part, get_form(form), list(by), holdout=self.splits))
            except LawError as exc:
                out.skipped.append((_label(by, group), str(exc)))
        self._cache[key] = out
        return out

    def per_model(self, kind: str, forms: Sequence[str] = POWER_FORMS) -> list[FitResult]:
        """One law per model: its fit of the first of ``forms`` that can be fitted (Eq. 1, as
        in Table 2, when the model's rows allow it)."""
        chosen: dict[str, FitResult] = {}
        for form in forms:
            for f in self.fits(kind, form, ("model",)).results:
                chosen.setdefault(str(f.group["model"]), f)
        return [chosen[m] for m in sorted(chosen)]

    def compared(self, kind: str, by: Sequence[str] = ("method",)) -> Comparison | None:
        """Every form fitted on ``kind`` rows per group of ``by``, ranked by held-out MAPE on
        `RANK_SPLIT`, each with every split of `splits` (cached; None when no form can be
        fitted)."""
        key = (kind, tuple(by))
        if key not in self._compared:
            df, _ = self.rows(kind, "all")
            try:
                self._compared[key] = compare(df, None, list(by), holdout=self.splits) \
                    if len(df) else None
            except LawError:
                self._compared[key] = None
        return self._compared[key]

    def best(self, kind: str, by: Sequence[str] = ("method",)) -> list[FitResult]:
        """The feasible form with the lowest held-out MAPE per group of ``by`` on ``kind`` rows
        (any form where none is feasible), among those with the evidence to be called best
        (`complaw.laws.select`): a group without one has none."""
        found = self.compared(kind, by)
        return credible_best(found)[0] if found else []

    def evidence_note(self, kind: str, by: Sequence[str] = ("method",)) -> str | None:
        """Why groups of ``kind`` rows have no best law (None when every group has one)."""
        found = self.compared(kind, by)
        reasons = credible_best(found)[1] if found else {}
        return "; ".join(f"{label}: {why}" for label, why in reasons.items()) or None

    def write_laws(self, path: Path, sets: Sequence[FitSet]) -> Path:
        """Write the laws of ``sets`` and of the form comparisons as ``complaw fit --json``
        does (readable by ``complaw predict --law FILE.json#NAME``)."""
        fits = {f.name: f.to_dict() for s in sets for f in s.results}
        for kind in LAW_KINDS:
            self.compared(kind)
        for c in self._compared.values():
            fits.update({f.name: f.to_dict() for f in (c.fits if c else [])})
        return write_json_atomic(path, list(fits.values()))
