"""The report's zero-shot part: each task's accuracy against r with its law, and the paper's
extrinsic claims answered on the study's own measurements.

* figure ``tasks``: accuracy against r per task and method, measured (± 1.96 standard errors of
  the documents) without RFT and at the largest D, with the method's best accuracy law by
  held-out error (the two-step law where task loss was measured) and its 95 % prediction
  interval, for each model's L0;
* table ``shape``: is the decline linear in r (the paper: accuracy falls linearly while loss
  rises faster)? Per model and dataset, without RFT, a line and a parabola in r are fitted by
  OLS to the base and compressed values; the F test of the r² term says which holds;
* table ``rcrit``: the extrinsic critical ratio per model and task: the largest r whose
  predicted accuracy without RFT stays ≥ σ·L0, by the best accuracy law and by the line.

Both tables and the figure register into the report's registries (`tables.TABLES`,
`figures.FIGURES`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import f as fisher

from complaw.laws.fit import FitResult
from complaw.laws.metrics import get_metric, stage_metric
from complaw.laws.select import with_companions
from complaw.report.analysis import HEADLINE, SIGMAS, Analysis
from complaw.report.figures import (
    FIGURES,
    FigureSpec,
    color,
    curve,
    legend,
    observed,
    panels,
)
from complaw.report.study import Skip
from complaw.report.tables import TABLES, Built, TableSpec, fmt

LEVEL = 0.05
"""The F test's level: the r² term is kept below it."""
R_GRID = np.round(np.linspace(0.0, 0.95, 96), 4)


def _accuracy_laws(a: Analysis) -> list[FitResult]:
    """The best accuracy law of each (method, task) the report trusts (`Analysis.best`)."""
    return [f for f in a.best("tasks") if f.metric == stage_metric("extrinsic").name]


def _rows_of(a: Analysis, f: FitResult) -> pd.DataFrame:
    rows, _ = a.rows("tasks", "all")
    for key in ("method", "dataset"):
        if key in f.group:
            rows = rows[rows[key].astype(str) == str(f.group[key])]
    return rows[rows["metric"] == f.metric]


def _base_task_loss(rows: pd.DataFrame) -> float:
    """One model's base task loss T0 on the task (NaN when not measured: older records)."""
    return float(rows["T0"].iloc[0]) if "T0" in rows.columns else float("nan")


def tasks_vs_r(a: Analysis) -> Figure:
    """Accuracy against r per (method, task), with the best law and its 95 % PI band."""
    laws = _accuracy_laws(a)
    if not laws:
        raise Skip(a.evidence_note("tasks") or "no per-task accuracy law could be fitted "
                   "(the study needs task-loss records: a zero-shot evaluation by this version)")
    fig, axes = panels(1, len(laws), 4.8, 3.8)
    for ax, f in zip(axes[0], laws, strict=True):
        rows = _rows_of(a, f)
        law = f.law()
        D_max = float(rows["D"].max())
        for k, (model, g) in enumerate(rows.groupby("model", sort=True)):
            L0, T0 = float(g["L0"].iloc[0]), _base_task_loss(g)
            for D, style in sorted({(0.0, "--"), (D_max, ":")}):
                part = g[g["D"] == D].sort_values("r")
                x = np.r_[0.0, part["r"].to_numpy()]
                y = np.r_[L0, part["L"].to_numpy()]
                se = np.r_[np.nan, part["L_se"].to_numpy(float)] if "L_se" in part else None
                label = f"{model}, D={D:g}"
                artist = observed(ax, x, y, label, color(k), line=False)
                artist.set_markerfacecolor(color(k) if D == 0 else "none")
                if se is not None and np.isfinite(se).any():
                    ax.errorbar(x, y, yerr=1.96 * se, fmt="none", ecolor=color(k), alpha=0.4,
                                linewidth=0.8)
                pred = law.predict(L0, R_GRID, D, T0=T0)
                curve(ax, R_GRID, pred.L, color(k), style=style)
                if pred.pi_low is not None:
                    ax.fill_between(R_GRID, pred.pi_low, pred.pi_high, color=color(k),
                                    alpha=0.08 if D else 0.15, linewidth=0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("compression ratio r")
        ax.set_ylabel(get_metric(f.metric).label)
        h = f.heldout.get("r:0.5")
        points = None if h is None else h.abs_error_points
        ax.set_title(f"{f.group.get('dataset')}, {f.group.get('method')}: {f.form}"
                     + (f" (held out r > 0.5: {points:.1f} points)" if points is not None
                        else ""), fontsize=8)
        legend(ax)
    return fig


def _poly(r: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, float]:
    """OLS coefficients (constant first) and residual sum of squares of a polynomial in r."""
    X = np.vander(r, degree + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    return coef, float(resid @ resid)


def line_or_parabola(r: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
    """A line and a parabola in r fitted to (r, y); the F test of the r² term (None with fewer
    than 4 distinct ratios). ``shape`` is ``linear`` unless the r² term is significant at
    `LEVEL`, then ``convex`` (rising faster) or ``concave`` (falling faster) by its sign."""
    if len(np.unique(r)) < 4:
        return None
    (a1, b1), rss1 = _poly(r, y, 1)
    (a2, b2, c2), rss2 = _poly(r, y, 2)
    dof = len(r) - 3
    F = (rss1 - rss2) / (rss2 / dof) if rss2 > 0 else np.inf
    p = float(fisher.sf(F, 1, dof))
    shape = "linear" if p >= LEVEL else ("convex" if c2 > 0 else "concave")
    return {"n": int(len(r)), "slope": float(b1), "curvature": float(c2), "F": float(F),
            "p_r2": p, "shape": shape}


def _shape(a: Analysis) -> Built:
    obs = a.study.obs
    headline = [stage_metric(kind).name for kind in HEADLINE]
    rows = pd.concat([with_companions(obs, metric) for metric in headline])
    rows = rows[rows["D"] == 0]
    rows = rows[(rows["calibration"] == "none") | rows["base"].astype(bool)]
    out = []
    for (model, metric, dataset), g in rows.groupby(["model", "metric", "dataset"], sort=True):
        found = line_or_parabola(g["r"].to_numpy(float), g["L"].to_numpy(float))
        if found is not None:
            out.append({"model": model, "metric": metric, "dataset": dataset, **found})
    if not out:
        raise Skip("no metric was measured at 4 ratios or more without RFT")
    data = pd.DataFrame(out)
    shown = pd.DataFrame([{
        "model": r["model"], "metric": r["metric"], "dataset": r["dataset"], "n": str(r["n"]),
        "slope": fmt(r["slope"]), "r² term": fmt(r["curvature"]), "p (r² term)": fmt(r["p_r2"]),
        "shape": r["shape"]} for r in out])
    notes = [f"without RFT, calibration-free, the base model at r = 0 included; a line and a "
             f"parabola in r fitted by OLS; the r² term is kept where its F test gives p < "
             f"{LEVEL}; the paper finds accuracy linear in r and loss rising faster"]
    for metric in headline:
        mine = data[data["metric"] == metric]
        if len(mine):
            counts = mine["shape"].value_counts()
            notes.append(f"{metric}: " + ", ".join(f"{v} of {len(mine)} {k}"
                                                    for k, v in counts.items()))
    return data, shown, notes


def critical_ratio_of(pred: np.ndarray, L0: float, sigma: float) -> float:
    """The largest r on `R_GRID` up to which the predictions ``pred`` (on `R_GRID`) stay
    ≥ σ·L0 (NaN when even the smallest step misses it)."""
    below = np.flatnonzero(np.asarray(pred, float) < sigma * L0)
    if not len(below):
        return float(R_GRID[-1])
    return float(R_GRID[below[0] - 1]) if below[0] > 0 else float("nan")


def _rcrit(a: Analysis) -> Built:
    laws = _accuracy_laws(a)
    if not laws:
        raise Skip(a.evidence_note("tasks") or "no per-task accuracy law could be fitted")
    out = []
    for f in laws:
        rows = _rows_of(a, f)
        law = f.law()
        for model, g in rows.groupby("model", sort=True):
            L0 = float(g["L0"].iloc[0])
            plain = g[g["D"] == 0]
            r = np.r_[0.0, plain["r"].to_numpy(float)]
            y = np.r_[L0, plain["L"].to_numpy(float)]
            (a0, b0), _ = _poly(r, y, 1) if len(r) > 2 else ((np.nan, np.nan), 0.0)
            by_law = law.predict(L0, R_GRID, 0.0, T0=_base_task_loss(g)).L
            by_line = a0 + b0 * R_GRID
            for sigma in SIGMAS:
                out.append({
                    "model": model, "method": f.group.get("method"),
                    "dataset": f.group.get("dataset"), "sigma": sigma, "L0": L0,
                    "form": f.form,
                    "r_crit_law": critical_ratio_of(by_law, L0, sigma),
                    "r_crit_line": critical_ratio_of(by_line, L0, sigma),
                })
    data = pd.DataFrame(out)
    shown = pd.DataFrame([{
        "model": r["model"], "method": r["method"], "task": r["dataset"], "σ": fmt(r["sigma"]),
        "L0": fmt(r["L0"]), f"r_crit ({r['form']})": fmt(r["r_crit_law"]),
        "r_crit (line)": fmt(r["r_crit_line"])} for r in out])
    notes = ["the largest r (step 0.01) whose predicted accuracy without RFT stays ≥ σ·L0; by "
             "the best accuracy law of the method and task (fitted on every model), and by a "
             "line through the model's own measurements without RFT"]
    return data, shown.fillna("–"), notes


FIGURES.add("tasks", FigureSpec(
    "tasks", "Zero-shot accuracy against r, per task",
    "Each task's accuracy (bars: ±1.96 standard errors of its documents) without RFT (filled) "
    "and at the largest D (hollow), with the method's best accuracy law by held-out error "
    "(the two-step law r, D → task loss → accuracy where it qualifies) and its 95% prediction "
    "interval (band), for each model.", tasks_vs_r, section="answer"))
TABLES.add("shape", TableSpec(
    "shape", "laws", "Is the decline linear in r?",
    "The paper's extrinsic claim, tested: a line against a parabola in r, per model and "
    "dataset, without RFT.", _shape))
TABLES.add("rcrit", TableSpec(
    "rcrit", "laws", "Extrinsic critical ratio per model",
    "The largest ratio that keeps σ of the base model's accuracy, per model and task.", _rcrit))
