"""The two-step accuracy law: (r, D) -> task loss (a loss form) -> accuracy (a link).

A zero-shot accuracy is a noisy count of right answers; the task loss of the same answers
(bits per byte of the correct one, from the same log-likelihoods) moves smoothly with r and D
and follows the loss forms. The two-step law fits each on its own rows, one task at a time:

1. ``step`` (a loss form, ``degradation`` by default) on the group's ``task_loss`` rows, exactly
   as any loss fit;
2. ``link`` (`complaw.laws.link`, ``sigmoid`` by default) on the task's (ℓ, acc) pairs: each
   accuracy row with the task-loss row of the same model (`pairs`), and each base model's
   (ℓ0, acc0) from the L0 columns.

It predicts from (L0, r, D) like every form, exactly L0 at r = 0 (feasible), and starts from the
base model's measured task loss T0 where known; how, why T0 matters, and its uncertainty:
docs/laws.md, "Task loss and the two-step accuracy law".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import block_diag

from complaw.errors import LawError
from complaw.laws.fit import FITTERS, Coefficient, _statistics, fit_group, inputs_of
from complaw.laws.forms import FORMS, LOGIT, Coef, Form, Inputs, Params, get_form
from complaw.laws.holdout import CONDITION
from complaw.laws.link import CHANCE, fit_link, get_link


class NoTaskLossError(LawError):
    """A two-step fit's group has no rows of its companion metric (task loss)."""


BASE = ("model", "method", "calibration", "dataset")
"""The columns that name a base model's measurement (its L0) of one task."""


@dataclass(frozen=True)
class TwoStepForm(Form):
    """Accuracy through a loss form on the task loss and a link (see the module docstring)."""

    step: str = "degradation"
    link: str = "sigmoid"

    def __post_init__(self) -> None:
        names = self.coef_names()
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise LawError(f"form {self.name}: step {self.step} and link {self.link} both have "
                           f"coefficient(s) {', '.join(clash)}; rename one")

    @property
    def coefs(self) -> tuple[Coef, ...]:
        return (*get_form(self.step).coefs, *get_link(self.link).coefs, CHANCE)

    def predict(self, coefficients: Params, data: Inputs) -> np.ndarray:
        self.check(coefficients, "the law")
        link = get_link(self.link)
        acc0 = np.asarray(data["L0"], dtype=float)
        T0 = np.asarray(data.get("T0", np.nan), dtype=float)
        loss0 = np.where(np.isfinite(T0), T0, link.inverse(coefficients, acc0))
        loss = get_form(self.step).predict(coefficients, {"L0": loss0, "r": data["r"],
                                                          "D": data["D"]})
        return acc0 + (link.predict(coefficients, loss) - link.predict(coefficients, loss0))


def two_step(name: str, step: str = "degradation", link: str = "sigmoid") -> TwoStepForm:
    """A two-step form called ``name`` of loss form ``step`` and link ``link``."""
    s, k = get_form(step), get_link(link)
    return TwoStepForm(
        name, f"acc = link(ℓ), ℓ = {step}(ℓ0, r, D), ℓ0 = T0 or link⁻¹(acc0); link: {k.equation}",
        f"accuracy through the task loss ℓ: a {step} law of ℓ in (r, D), then a per-task "
        f"{link} link from ℓ to accuracy; feasible, intervals inside (0, 1)",
        f"{k.template}; ℓ: {s.template} at L0 = ℓ0 (measured, else link⁻¹(acc0))",
        "complaw (issue #20): task loss as a proxy for accuracy, as in the observational "
        "scaling laws of Ruan et al. 2024 and Gadre et al. 2024 (loss -> downstream error)",
        metrics=("accuracy",), feasible=True, scale=LOGIT, companion="task_loss",
        by=("dataset",), step=step, link=link,
    )


def pairs(acc: pd.DataFrame, loss: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(task loss, accuracy) measured on the same models: the compressed ones (the same
    condition, `complaw.laws.holdout.CONDITION`, and seed where the rows have one) and the base
    ones (the L0 of both metrics of the same model, method, calibration and dataset).

    Not by ``experiment``: the record loader keeps one task-loss row per model, which may come
    from a task-loss-only evaluation record, whose id is not that of the accuracy's record."""
    keys = [*CONDITION, *(["seed"] if "seed" in acc.columns and "seed" in loss.columns else [])]
    moved = acc[acc["r"] > 0].merge(loss[loss["r"] > 0], on=keys, suffixes=("_acc", "_loss"))
    base = acc[[*BASE, "L0"]].drop_duplicates().merge(
        loss[[*BASE, "L0"]].drop_duplicates(), on=list(BASE), suffixes=("_acc", "_loss"))
    return (np.concatenate([moved["L_loss"], base["L0_loss"]]).astype(float),
            np.concatenate([moved["L_acc"], base["L0_acc"]]).astype(float))


def task_chance(acc: pd.DataFrame, label: str) -> float | None:
    """The one chance accuracy of a task's accuracy rows (None: unknown); two levels: an error."""
    levels = acc["chance"].dropna().unique() if "chance" in acc.columns else []
    if len(levels) > 1:
        raise LawError(f"{label}: the accuracy rows have {len(levels)} chance levels "
                       f"({', '.join(map(str, sorted(levels)))}); fit one task at a time")
    return float(levels[0]) if len(levels) else None


def _fit_two_step(df: pd.DataFrame, form: TwoStepForm, *, intercept: bool, label: str,
                  level: float, bootstrap: int, seed: int,
                  bootstrap_by: str | None) -> dict[str, Any]:
    if bootstrap:
        raise LawError(f"form {form.name} has no bootstrap (its intervals come from the two "
                       "fits' covariances); drop --bootstrap")
    acc, loss = form.split_rows(df)
    if loss.empty:
        raise NoTaskLossError(
            f"no {form.companion} rows for {label}; these records predate task loss: re-run "
            "the zero-shot evaluation"
        )
    try:
        step = fit_group(loss, form.step, level=level)
    except LawError as exc:
        raise type(exc)(f"step 1 of the {form.name} fit of {label}: {exc}") from None
    link = fit_link(form.link, *pairs(acc, loss), task_chance(acc, label), level=level,
                    what=f"the {form.link} link of {label}")
    theta = {**step.estimates(), **link.estimates()}
    L = acc["L"].to_numpy(float)
    z = form.scale.to_scale(L)
    resid = form.scale.to_scale(form.predict(theta, inputs_of(acc))) - z
    # the accuracies fit the link's coefficients; step 1's were fitted on the task-loss rows
    stats = _statistics(form, L, z, resid, len(link.coefficients), level)
    chance = Coefficient("chance", link.chance, 0.0, link.chance, link.chance, np.nan)
    return dict(stats, coefficients={**step.coefficients, **link.coefficients, "chance": chance},
                cov=block_diag(step.cov, link.cov, np.zeros((1, 1))), draws=None,
                bootstrap=None)


FITTERS[TwoStepForm] = _fit_two_step
FORMS.add("two-step", two_step("two-step"))
