"""The report's figures: one registry, name -> `FigureSpec`, like the paper's Figures 1-8, 10.

Each figure function takes an `Analysis` and returns a matplotlib `Figure` (no pyplot, so no
global state and no display), or raises `Skip` naming what the study lacks. Measured values are
drawn only by `observed` (artists with gid ``"obs"``) and laws only by `curve` (gid ``"law"``),
so a test can read back exactly which measurements a figure shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from complaw.errors import LawError
from complaw.laws.law import Law
from complaw.laws.metrics import get_metric, stage_metric
from complaw.laws.theory import critical_ratio
from complaw.registry import Registry
from complaw.report.analysis import HEADLINE, KIND_COLUMN, LAW_KINDS, SIGMAS, Analysis
from complaw.report.study import MEAN_PREFIX, Skip, intrinsic

OBS = "obs"
LAW = "law"
IDEAL = "ideal"
LEGEND_MAX = 12
KEPT = np.linspace(0.30, 0.99, 70)
"""The fractions of L0 kept along Figure 5's σ axis (`complaw.laws.metrics.Metric.sigma`)."""


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: title, caption and the function that draws it."""

    name: str
    title: str
    caption: str
    draw: Callable[[Analysis], Figure]
    section: str = "figures"
    """The report section the figure is shown in."""


FIGURES: Registry[FigureSpec] = Registry("report figure", LawError)


def color(i: int) -> tuple[float, ...]:
    return colormaps["tab10"](i % 10)


def panels(nrows: int, ncols: int, width: float = 4.8, height: float = 3.4) -> tuple:
    """A figure with a grid of axes (always 2-D), with fixed margins in inches (a layout
    engine would measure every label and take most of a report's drawing time)."""
    w, h = width * ncols, height * nrows
    fig = Figure(figsize=(w, h))
    fig.subplots_adjust(left=0.75 / w, right=1 - 0.15 / w, bottom=0.55 / h, top=1 - 0.35 / h,
                        wspace=0.3, hspace=0.5)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def observed(ax: Axes, x, y, label: str | None = None, c=None, line: bool = True):
    """Draw measured values (gid "obs"): markers, joined by a line unless ``line`` is False."""
    (artist,) = ax.plot(
        np.asarray(x, float), np.asarray(y, float), marker="o", markersize=4,
        linestyle="-" if line else "none", label=label, color=c,
    )
    artist.set_gid(OBS)
    return artist


def curve(ax: Axes, x, y, c=None, label: str | None = None, gid: str = LAW,
          style: str = "--"):
    """Draw a prediction (gid "law" by default), dashed."""
    (artist,) = ax.plot(np.asarray(x, float), np.asarray(y, float), linestyle=style,
                        linewidth=1.2, color=c, label=label)
    artist.set_gid(gid)
    return artist


def legend(ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if 0 < len(handles) <= LEGEND_MAX:
        ax.legend(fontsize=7)


def _dataset_order(names) -> list[str]:
    """Datasets sorted, the zero-shot mean last."""
    return sorted(set(map(str, names)), key=lambda d: (d.startswith(MEAN_PREFIX), d))


# ---------------------------------------------------------------- L against r (Figs 1, 3, 7, 8)


def metric_vs_r(a: Analysis, metric: str, calibrated: bool) -> Figure:
    """``metric`` against r for each dataset, without RFT (left) and with RFT (right, the
    largest D of each RFT dataset), both from the base model at r = 0; one line per model and
    method."""
    obs = a.study.obs
    rows = obs[obs["metric"] == metric]
    comp = rows[~rows["base"].astype(bool)]
    comp = comp[(comp["calibration"] != "none") if calibrated else (comp["calibration"] == "none")]
    what = "calibration-based" if calibrated else "calibration-free"
    if comp.empty:
        raise Skip(f"no {metric} measurements of {what} compression in this study")
    base = rows[rows["base"].astype(bool) & rows["model"].isin(set(comp["model"]))]
    rft = comp[comp["D"] > 0]
    keys = ["model", "method", "calibration", "rft", "dataset"]
    rft = rft[rft["D"] == rft.groupby(keys)["D"].transform("max")]
    columns = [("without RFT", comp[comp["D"] == 0])]
    if len(rft):
        columns.append(("with RFT (largest D)", rft))
    datasets = _dataset_order(comp["dataset"])
    fig, axes = panels(len(datasets), len(columns))
    for i, dataset in enumerate(datasets):
        for j, (title, part) in enumerate(columns):
            ax = axes[i, j]
            part = part[part["dataset"] == dataset]
            groups = part.groupby(["model", "method", "calibration", "rft"], sort=True)
            for k, ((model, method, calib, rft_set), g) in enumerate(groups):
                g = g.sort_values(["r", "D"])
                x, y = g["r"].to_numpy(), g["L"].to_numpy()
                b = base[(base["model"] == model) & (base["dataset"] == dataset)]  # r = 0
                x, y = np.r_[b["r"].to_numpy(), x], np.r_[b["L"].to_numpy(), y]
                label = f"{model} · {method}" + (f" ({calib})" if calibrated else "")
                if rft_set != "none":
                    label += f" · RFT {rft_set}, D={g['D'].max():g}"
                observed(ax, x, y, label, color(k))
            ax.set_title(f"{dataset}: {title}", fontsize=9)
            ax.set_xlabel("compression ratio r")
            ax.set_ylabel(get_metric(metric).label)
            legend(ax)
    return fig


# ---------------------------------------------------------------- speedup (Figs 2, 6)


def _speed_ratios(a: Analysis) -> list[tuple[str, pd.DataFrame]]:
    """(panel title, rows with r, ratio, series and ideal) for the runtime speedup S0 / S and
    the prefill / decode speedups."""
    out = []
    rt = a.laws[a.laws["metric"] == "runtime"]
    if len(rt):
        out.append(("runtime speedup S0 / S",
                    rt.assign(ratio=rt["L0"] / rt["L"], series=rt["dataset"], ideal=np.nan)))
    for phase, part in a.study.speed.groupby("phase", sort=True):
        out.append((f"{phase} speedup", part.assign(ratio=part["speedup"],
                                                    series=part["source"])))
    return out


def speedup(a: Analysis) -> Figure:
    """Speedup against r, one line per model and method (Figure 2); dotted: the
    FLOP-proportional ideal where the records give it."""
    found = _speed_ratios(a)
    if not found:
        raise Skip("no runtime or speed measurements in this study")
    fig, axes = panels(1, len(found))
    for ax, (title, rows) in zip(axes[0], found, strict=True):
        groups = rows.groupby(["model", "method", "calibration", "series"], sort=True)
        for k, ((model, method, _, series), g) in enumerate(groups):
            g = g.sort_values(["r", "D"])
            observed(ax, g["r"], g["ratio"], f"{model} · {method} · {series}", color(k))
            ideal = g[pd.to_numeric(g["ideal"], errors="coerce").notna()]
            if len(ideal):
                curve(ax, ideal["r"], ideal["ideal"], color(k), gid=IDEAL, style=":")
        ax.axhline(1.0, color="0.6", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("compression ratio r")
        ax.set_ylabel("speedup")
        legend(ax)
    return fig


# ---------------------------------------------------------------- laws against observations


def law_panel(ax: Axes, rows: pd.DataFrame, law: Law, x: str, normalize: bool = False) -> None:
    """Observations of ``rows`` against ``x`` (r or D), each with the law's curve.

    One colour per (L0, other variable); with ``normalize``, L / L0 is drawn instead of L.
    """
    other = "D" if x == "r" else "r"
    if x == "r":
        grid = np.linspace(0.0, 0.95, 60)
    else:
        grid = np.r_[0.0, np.geomspace(1.0, max(float(rows["D"].max()), 10.0) * 1.5, 60)]
    rows = rows.copy()
    rows["y"] = rows["L"] / rows["L0"] if normalize else rows["L"]
    for k, ((L0, o), g) in enumerate(rows.groupby(["L0", other], sort=True)):
        g = g.sort_values(x)
        observed(ax, g[x], g["y"], f"L0={L0:.3g}, {other}={o:g}", color(k), line=False)
        r, D = (grid, o) if x == "r" else (o, grid)
        pred = law.predict(L0, r, D).L
        curve(ax, grid, pred / L0 if normalize else pred, color(k))
    ax.set_xlabel("compression ratio r" if x == "r" else "RFT size D (tokens)")
    if x == "D":
        ax.set_xscale("symlog", linthresh=1.0)
    label = get_metric(law.metric).label
    ax.set_ylabel(f"{label} / L0" if normalize else label)
    ax.set_title(law.formula(), fontsize=8)
    legend(ax)


def _main_best(a: Analysis, kind: str) -> tuple[pd.DataFrame, Law]:
    """The rows of the report's main method (calibration-free when there is one) and its
    best law by held-out error."""
    rows, _ = a.rows(kind)
    best = [f for f in a.best(kind) if f.group.get("method") in set(rows["method"])]
    if not best:
        raise Skip(f"no law could be fitted on the {kind} rows")
    f = best[0]
    return rows[rows["method"] == f.group["method"]], f.law()


def law_vs_obs(a: Analysis, kind: str, x: str) -> Figure:
    """The main method's best law by held-out error against the observations: per L0
    frontier against r at the smallest D (Figure 4a-b), or L / L0 against D per r
    (Figure 4c-d)."""
    rows, law = _main_best(a, kind)
    if x == "r":
        rows = rows[rows["D"] == rows["D"].min()]
    elif rows["D"].nunique() < 2:
        raise Skip(f"the {kind} rows have a single RFT size D; nothing to show against D")
    fig, axes = panels(1, 1, 6.4, 4.4)
    law_panel(axes[0, 0], rows, law, x, normalize=x == "D")
    return fig


def heldout_panels(a: Analysis) -> Figure:
    """Predicted against measured for the rows each method's law did not see (fit r ≤ 0.5,
    predict r > 0.5): its best form and the paper's Eq. 1, with 95% prediction intervals."""
    from complaw.laws.holdout import heldout_error
    from complaw.report.analysis import RANK_SPLIT

    found = [(kind, f) for kind in LAW_KINDS for f in a.best(kind)]
    if not found:
        raise Skip("no law could be fitted")
    fig, axes = panels(1, len(found), 4.4, 4.2)
    drawn = 0
    for ax, (kind, best) in zip(axes[0], found, strict=True):
        rows, _ = a.rows(kind, "all")
        for key in ("method", "dataset"):
            if key in best.group:
                rows = rows[rows[key] == best.group[key]]
        forms = list(dict.fromkeys([best.form, "eq1"]))
        for k, form in enumerate(forms):
            p = heldout_error(rows, form, RANK_SPLIT).predictions
            if p.empty:
                continue
            err = None
            if p["pi_low"].notna().all():
                err = np.vstack([p["L_hat"] - p["pi_low"], p["pi_high"] - p["L_hat"]])
            ax.errorbar(p["L"], p["L_hat"], yerr=err, fmt="none", ecolor=color(k), alpha=0.35,
                        linewidth=0.8)
            observed(ax, p["L"], p["L_hat"], f"{form}", color(k), line=False)
            drawn += 1
        lims = [float(rows["L"].min()) * 0.9, float(rows["L"].max()) * 1.1]
        curve(ax, lims, lims, "0.5", gid=IDEAL, style=":")
        ax.set_xlabel(f"measured {get_metric(best.metric).label}")
        ax.set_ylabel("predicted (95% prediction interval)")
        where = " ".join(str(best.group[k]) for k in ("method", "dataset") if k in best.group)
        ax.set_title(f"{kind}, {where}: held out r > 0.5", fontsize=8)
        legend(ax)
    if not drawn:
        raise Skip("no split held out any row (the study needs ratios on both sides of 0.5)")
    return fig


def per_dataset(a: Analysis) -> Figure:
    """Table 6's per-dataset laws against the test loss, one panel per test dataset."""
    fits = a.fits("intrinsic", "eq1", (KIND_COLUMN, "dataset"), "all").results
    main = "calibration-free" if any(f.group[KIND_COLUMN] == "calibration-free" for f in fits) \
        else "calibrated"
    fits = [f for f in fits if f.group[KIND_COLUMN] == main]
    if not fits:
        raise Skip("no per-dataset intrinsic law (Table 6) could be fitted")
    fig, axes = panels(1, len(fits))
    rows = intrinsic(a.laws)
    for ax, f in zip(axes[0], fits, strict=True):
        mine = rows[(rows["dataset"] == f.group["dataset"]) & (rows[KIND_COLUMN] == main)]
        law_panel(ax, mine, f.law(), "r")
        ax.set_title(f"{f.group['dataset']} ({main}): {f.law().formula()}", fontsize=7)
    return fig


def runtime_laws(a: Analysis) -> Figure:
    """Runtime against r with each model's fitted runtime law (Table 4; Figure 6)."""
    fits = a.fits("runtime", "runtime", ("model", "dataset")).results
    if not fits:
        raise Skip("no runtime law (Table 4) could be fitted")
    fig, axes = panels(1, len(fits))
    rows, _ = a.rows("runtime")
    for ax, f in zip(axes[0], fits, strict=True):
        mine = rows[(rows["model"] == f.group["model"]) & (rows["dataset"] == f.group["dataset"])]
        law_panel(ax, mine, f.law(), "r")
        ax.set_title(f"{f.group['model']}, {f.group['dataset']}: {f.law().formula()}",
                     fontsize=7)
    return fig


# ---------------------------------------------------------------- critical ratio (Fig 5)


def critical(a: Analysis) -> Figure:
    """r_crit(σ) of each model's Eq. 1 law (Table 2; Eq. 2 where Eq. 1 cannot be fitted), with
    its 95% band from the fit."""
    fits = {kind: a.per_model(kind) for kind in HEADLINE}
    if not any(fits.values()):
        raise Skip("no per-model law (Eq. 1 or 2) could be fitted")
    fig, axes = panels(1, 2)
    drawn = 0
    for ax, kind in zip(axes[0], HEADLINE, strict=True):
        notes = []
        metric = stage_metric(kind)
        sigmas = metric.sigma(KEPT)
        for k, f in enumerate(fits[kind]):
            law = f.law()
            try:
                found = [critical_ratio(law, s, n_draws=200) for s in sigmas]
            except LawError as exc:
                notes.append(f"{f.group['model']}: {str(exc).split(';')[0]}")
                continue
            r = np.clip([c.r_crit for c in found], 0, 1)
            curve(ax, sigmas, r, color(k), label=f"{f.group['model']} ({f.form})")
            if all(c.ci for c in found):
                ax.fill_between(sigmas, np.clip([c.ci[0] for c in found], 0, 1),
                                np.clip([c.ci[1] for c in found], 0, 1), color=color(k),
                                alpha=0.15, linewidth=0)
            drawn += 1
        for s in metric.sigma(SIGMAS):
            ax.axvline(s, color="0.7", linewidth=0.8, linestyle=":")
        ax.set_xlabel(f"recovery threshold σ (L/L0^α {'≥' if metric.higher_is_better else '≤'} σ)")
        ax.set_ylabel("critical ratio r_crit")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{kind}" + ("" if not notes else f" (not drawn: {'; '.join(notes)})"),
                     fontsize=8, wrap=True)
        legend(ax)
    if not drawn:
        raise Skip("no per-model law meets the feasibility conditions of the theory")
    return fig


def design_curve(a: Analysis) -> Figure:
    """An adaptive study's held-out error against the fraction of the grid's cost spent: the
    design's law at each step, and random subsets of the same cost (median, 10th-90th
    percentile), each judged on the study's experiments it had not run (design.json)."""
    from complaw.experiment.folder import StudyFolder

    summary = StudyFolder(a.study.folder).read_design()
    if not summary:
        raise Skip("not an adaptive study (no design.json; run with --design adaptive)")
    points = pd.DataFrame(summary.get("curve") or [])
    if points.empty or points["adaptive_mape_pct"].isna().all():
        raise Skip("the design stopped before any step left experiments to predict")
    fig, axes = panels(1, 1, 5.6, 3.8)
    ax = axes[0][0]
    x = 100 * points["cost_fraction"]
    if points["median_mape_pct"].notna().any():
        ax.fill_between(x, points["p10"], points["p90"], color=color(1), alpha=0.2,
                        linewidth=0, label="random, 10th-90th percentile")
        observed(ax, x, points["median_mape_pct"], "random subsets (median)", color(1))
    observed(ax, x, points["adaptive_mape_pct"], f"adaptive ({summary.get('form')})", color(0))
    ax.set_xlabel("cost spent (% of the grid)")
    ax.set_ylabel("held-out MAPE of L (%)")
    ax.set_title("law error on the experiments not yet run", fontsize=8)
    legend(ax)
    return fig


for _spec in (
    FigureSpec("fig01", "Figure 1: accuracy against r (calibration-free)",
               "Zero-shot accuracy per task and their mean, without and with RFT.",
               partial(metric_vs_r, metric="accuracy", calibrated=False)),
    FigureSpec("fig02", "Figure 2: speedup against r",
               "Uncompressed over compressed runtime, and prefill / decode speedups; dotted: the "
               "FLOP-proportional ideal.", speedup),
    FigureSpec("fig03", "Figure 3: test loss against r (calibration-free)",
               "Test loss per test dataset, without and with RFT.",
               partial(metric_vs_r, metric="loss", calibrated=False), section="answer"),
    FigureSpec("heldout", "Held-out predictions",
               "Predicted against measured test loss and accuracy for the rows with r > 0.5, "
               "by laws fitted on r ≤ 0.5: each method's best form and the paper's Eq. 1; "
               "bars: 95% prediction intervals; dotted: predicted = measured.",
               heldout_panels, section="answer"),
    FigureSpec("fig04a", "Figure 4a: intrinsic law per L0 frontier",
               "Test loss against r at the smallest D; dashed: Table 1's Eq. 1 law.",
               partial(law_vs_obs, kind="intrinsic", x="r")),
    FigureSpec("fig04b", "Figure 4b: extrinsic law per L0 frontier",
               "Mean accuracy against r at the smallest D; dashed: the best law by held-out "
               "error.",
               partial(law_vs_obs, kind="extrinsic", x="r")),
    FigureSpec("fig04c", "Figure 4c: effect of D on test loss",
               "Test loss over L0 against the RFT size D, one colour per r; dashed: the law.",
               partial(law_vs_obs, kind="intrinsic", x="D")),
    FigureSpec("fig04d", "Figure 4d: effect of D on accuracy",
               "Mean accuracy over L0 against the RFT size D, one colour per r; dashed: the law.",
               partial(law_vs_obs, kind="extrinsic", x="D")),
    FigureSpec("fig05", "Figure 5: critical ratio against σ",
               "r_crit(σ) of each model's law (Table 2), 95% band; dotted: σ = 0.8, 0.9.",
               critical),
    FigureSpec("fig06", "Figure 6: runtime law", "Runtime against r with Table 4's law.",
               runtime_laws),
    FigureSpec("fig07", "Figure 7: test loss against r (calibration-based)",
               "As Figure 3, for calibration-based compression.",
               partial(metric_vs_r, metric="loss", calibrated=True)),
    FigureSpec("fig08", "Figure 8: accuracy against r (calibration-based)",
               "As Figure 1, for calibration-based compression.",
               partial(metric_vs_r, metric="accuracy", calibrated=True)),
    FigureSpec("fig10", "Figure 10: per-dataset laws",
               "Test loss against r per test dataset with Table 6's law.", per_dataset),
    FigureSpec("design", "Adaptive design: held-out error against cost",
               "Held-out MAPE of the law after each step of the adaptive design, against the "
               "share of the grid's cost spent; beside it, random subsets of the same cost. "
               "Each is judged on the study's experiments it had not run.", design_curve),
):
    FIGURES.add(_spec.name, _spec)
