"""The report's tables: one registry, name -> `TableSpec`; each builds a numeric frame (CSV)
and a display frame (HTML, Markdown, LaTeX) from an `Analysis`, or raises `Skip`.

Sections, in the page's order: ``answer`` (the best law per method by held-out error, and the
planner's recommendation), ``laws`` (every form compared on held-out error; the paper's Tables
1, 2, 3, 4 and 6 with our additions: CIs, centred R², AIC/BIC, held-out error on several
splits), ``paper`` (our exponents beside the published ones), ``plan`` (the planner for the
study's own models), ``study`` (what was run, where, how long).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import FitResult
from complaw.laws.forms import forms_for, get_form
from complaw.laws.holdout import noise_floor
from complaw.laws.metrics import METRICS, get_metric, stage_metric
from complaw.laws.planner import parse_plan, plan
from complaw.laws.published import get_law, published_laws
from complaw.registry import Registry
from complaw.report.analysis import (
    HEADLINE,
    KIND_COLUMN,
    LAW_KINDS,
    POWER_FORMS,
    RANK_SPLIT,
    SIGMAS,
    Analysis,
    FitSet,
)
from complaw.report.study import Skip

ANSWER_SIGMA = 0.9


@dataclass
class Table:
    """A built table: numbers for CSV, strings for the page, notes under it."""

    name: str
    title: str
    caption: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)


Built = tuple[pd.DataFrame, pd.DataFrame, list[str]]


@dataclass(frozen=True)
class TableSpec:
    """A table of the report: its section, title, caption and how to build it."""

    name: str
    section: str
    title: str
    caption: str
    build: Callable[[Analysis], Built]

    def make(self, analysis: Analysis) -> Table:
        data, display, notes = self.build(analysis)
        if data.empty:
            raise Skip("no rows")
        return Table(self.name, self.title, self.caption, data, display, notes)


TABLES: Registry[TableSpec] = Registry("report table", LawError)


def fmt(x: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, '–' for missing."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, int | np.integer):
        return str(int(x))
    return f"{float(x):.{digits}g}"


def fmt_ci(est: float, lo: float | None, hi: float | None) -> str:
    return f"{fmt(est)} [{fmt(lo)}, {fmt(hi)}]" if lo is not None else fmt(est)


def same(display: pd.DataFrame) -> Built:
    """A table whose display is its data."""
    return display, display.map(lambda v: v if isinstance(v, str) else fmt(v)), []


# ---------------------------------------------------------------- study tables


def _counts(a: Analysis) -> Built:
    s = a.study
    kinds: dict[str, dict[str, int]] = {}
    for r in s.records:
        row = kinds.setdefault(r.config.eval.kind, {"ok": 0, "failed": 0, "other": 0})
        row[r.status if r.status in ("ok", "failed") else "other"] += 1
    df = pd.DataFrame([{"kind": k, **v} for k, v in sorted(kinds.items())])
    if df.empty:
        raise Skip(f"no records in {s.records_dir}")
    total = {"kind": "total", **{c: int(df[c].sum()) for c in ("ok", "failed", "other")}}
    df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    notes = [f"{file}: unreadable ({why})" for file, why in s.problems]
    if s.unmatched:
        notes.append(f"{s.unmatched} metric entries of compressed models have no base-model "
                     "counterpart (no L0; e.g. speedups measured against the base)")
    for why, n in s.dropped.items():
        notes.append(f"{n} law-table row(s) not fitted: {why}")
    return df, df.astype(str), notes


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _timings(a: Analysis) -> Built:
    """Seconds per stage: summed over the records' timings and the runner's log."""
    rows: dict[str, dict[str, float]] = {}
    for r in a.study.records:
        for stage, sec in r.timings.items():
            if isinstance(sec, int | float):
                row = rows.setdefault(stage, {})
                row["records"] = row.get("records", 0) + 1
                row["seconds (records)"] = row.get("seconds (records)", 0.0) + float(sec)
    log = a.study.log
    for stage, part in log.groupby("stage", sort=True):
        row = rows.setdefault(str(stage), {})
        row["runs (log)"] = len(part)
        row["failed (log)"] = int((part["status"] == "failed").sum())
        row["seconds (log)"] = float(pd.to_numeric(part["seconds"], errors="coerce").sum())
    if not rows:
        raise Skip("no timings in the records or log.jsonl")
    df = pd.DataFrame([{"stage": k, **v} for k, v in sorted(rows.items())])
    return same(df)


def _environment(a: Analysis) -> Built:
    values: dict[str, set[str]] = {}
    for env in (r.environment for r in a.study.records):
        for k, v in _flatten(env).items():
            values.setdefault(k, set()).add(str(v))
    if not values:
        raise Skip("the records hold no environment")
    items = sorted(values.items())
    df = pd.DataFrame([{"key": k, "value": "; ".join(sorted(v))} for k, v in items])
    return df, df, []


def _configuration(a: Analysis) -> Built:
    obs = a.study.obs
    if obs.empty:
        raise Skip("no measurements in the records")
    comp = obs[~obs["base"].astype(bool)]

    def values(col: str, rows: pd.DataFrame = obs) -> str:
        found = sorted(set(rows[col]))
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in found)

    items = [
        ("models", values("model")),
        ("methods", values("method", comp) or "–"),
        ("calibration", values("calibration", comp) or "–"),
        ("ratios r", values("r", comp) or "–"),
        ("RFT datasets", values("rft", comp) or "–"),
        ("RFT sizes D (tokens)", values("D", comp) or "–"),
    ]
    for metric in METRICS:
        rows = obs[obs["metric"] == metric]
        if len(rows):
            items.append((f"{metric} datasets", values("dataset", rows)))
    df = pd.DataFrame(items, columns=["item", "values"])
    return df, df, []


def _failures(a: Analysis) -> Built:
    rows = [
        {
            "record": r.id,
            "stage": r.failed_stage or r.config.eval.kind,
            "model": r.config.model,
            "error": r.error.splitlines()[0][:200] if r.error else "",
        }
        for r in a.study.records
        if r.status == "failed"
    ]
    if not rows:
        raise Skip("no failed records")
    df = pd.DataFrame(rows)
    return df, df.astype(str), []


# ---------------------------------------------------------------- law tables


@dataclass(frozen=True)
class FitTableDef:
    """Which fits a law table shows, and the published law each is compared with."""

    sets: Callable[[Analysis], list[FitSet]]
    paper: Callable[[FitResult, str], str | None]


def _known(name: str) -> str | None:
    return name if name in {law.name for law in published_laws()} else None


def _paper_all(f: FitResult, kind: str) -> str | None:
    """The published all-model law of the same form (Table 1 and its ablations), if any."""
    return next((law.name for law in published_laws()
                 if law.name.startswith(f"paper:all:{kind}") and law.form == f.form), None)


def _paper_model(f: FitResult, kind: str) -> str | None:
    return _known(f"paper:{str(f.group['model']).lower()}:{kind}") or _known(f"paper:all:{kind}")


def _paper_calibration(f: FitResult, kind: str) -> str | None:
    return _known(f"paper:{f.group[KIND_COLUMN]}:{kind}")


def _paper_runtime(f: FitResult, kind: str) -> str | None:
    model = str(f.group.get("model", "")).lower()
    return _known(f"paper:runtime:{model}") or _known("paper:runtime:all")


def paper_dataset(dataset: str) -> str | None:
    """The paper's name of a test set (``wikitext2:test`` -> ``wikitext2``), or None."""
    name = dataset.split(":")[0].lower().replace("-", "").replace("_", "")
    for known in ("wikitext2", "ptb", "alpaca"):
        if name.startswith(known.rstrip("2")):
            return known
    return None


def _paper_dataset(f: FitResult, kind: str) -> str | None:
    ds = paper_dataset(str(f.group.get("dataset", "")))
    if ds is None:
        return None
    suffix = ":llama-calibrated" if f.group.get(KIND_COLUMN) == "calibrated" else ""
    return _known(f"paper:{ds}:{kind}{suffix}")


FIT_TABLES: dict[str, FitTableDef] = {
    "table1": FitTableDef(
        lambda a: [
            a.fits(kind, form.name)
            for kind in HEADLINE
            for form in forms_for(stage_metric(kind).name)
            if form.companion is None  # the two-step law: per task, in the held-out table
        ],
        _paper_all,
    ),
    "table2": FitTableDef(
        lambda a: [a.fits(kind, "eq1", ("model",)) for kind in HEADLINE],
        _paper_model,
    ),
    "table3": FitTableDef(
        lambda a: [a.fits(kind, "eq1", (KIND_COLUMN,), "all") for kind in HEADLINE],
        _paper_calibration,
    ),
    "table4": FitTableDef(
        lambda a: [a.fits("runtime", "runtime", ("model", "dataset"))], _paper_runtime
    ),
    "table6": FitTableDef(
        lambda a: [a.fits("intrinsic", "eq1", (KIND_COLUMN, "dataset"), "all")], _paper_dataset
    ),
}


def fit_sets(a: Analysis) -> list[FitSet]:
    """Every fit set the law tables show, and the per-model fits the planner may fall back on
    (for laws.json)."""
    per_model = [a.fits(kind, form, ("model",)) for kind in HEADLINE for form in POWER_FORMS]
    return [s for d in FIT_TABLES.values() for s in d.sets(a)] + per_model


def _heldout_cells(f: FitResult) -> tuple[dict[str, Any], dict[str, str]]:
    """Held-out numbers of a fit (CSV) and their display, one column per split."""
    data: dict[str, Any] = {}
    shown: dict[str, str] = {}
    for split, h in f.heldout.items():
        data[f"heldout_n[{split}]"] = h.n
        data[f"mape_pct[{split}]"] = h.mape_pct
        data[f"degradation_mape_pct[{split}]"] = h.degradation_mape_pct
        data[f"coverage[{split}]"] = h.coverage
        shown[f"held-out MAPE {split}"] = pct(h.mape_pct) + (
            f" (n={h.n})" if h.mape_pct is not None else "")
    return data, shown


def pct(x: float | None, digits: int = 1) -> str:
    """A percentage for people ('–' for missing)."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}%"


def _fit_rows(sets: list[FitSet], paper: Callable[[FitResult, str], str | None]) -> Built:
    rows, shown, notes = [], [], []
    unfitted: dict[tuple[str, str, str], list[str]] = {}
    for s in sets:
        if s.single_D and s.results:
            notes.append(f"{s.kind} {s.form}: D takes a single value, so no RFT effect is "
                         "measured here")
        for label, why in s.skipped:
            unfitted.setdefault((s.kind, label, why), []).append(s.form)
        for f in s.results:
            group = {k: v for k, v in f.group.items() if k != "metric"}
            row: dict[str, Any] = {**group, "L": s.kind, "form": f.form, "n": f.n,
                                   "feasible": f.feasible}
            show: dict[str, Any] = {**group, "L": s.kind, "form": f.form, "n": str(f.n)}
            show["law"] = f.law().formula()
            symbols = get_form(f.form).symbols()
            for name, c in f.coefficients.items():
                row.update({name: c.estimate, f"{name}_lo": c.ci_low, f"{name}_hi": c.ci_high,
                            f"{name}_se": c.stderr})
                show[f"{symbols[name]} [{f.level:.0%} CI]"] = fmt_ci(
                    c.estimate, c.ci_low, c.ci_high) + (" (at bound)" if c.at_bound else "") + (
                    " (no evidence: held)" if c.unidentified else "")
            row["at_bounds"] = ",".join(f.at_bounds)
            held, held_shown = _heldout_cells(f)
            row.update(
                adj_r2=f.adj_r2, r2_kind=f.r2_kind, adj_r2_centered=f.adj_r2_centered,
                adj_r2_uncentered=f.adj_r2_uncentered, f=f.f, f_pvalue=f.f_pvalue, aic=f.aic,
                bic=f.bic, **held, subset=s.subset, paper=paper(f, s.kind),
            )
            show.update({
                "adj. R² (reported)": f"{fmt(f.adj_r2, 4)} ({f.r2_kind[:3]}.)",
                "adj. R² centred": fmt(f.adj_r2_centered, 4),
                "F": fmt(f.f, 4),
                "AIC": fmt(f.aic, 4),
                "BIC": fmt(f.bic, 4),
                **held_shown,
            })
            rows.append(row)
            shown.append(show)
    notes += [f"{kind} {', '.join(forms)} ({label}) not fitted: {why}"
              for (kind, label, why), forms in unfitted.items()]
    if not rows:
        raise Skip("; ".join(notes) or "no rows to fit")
    data, display = pd.DataFrame(rows), pd.DataFrame(shown).fillna("–")
    if data.groupby("L")["form"].nunique().max() > 1:
        keys = [c for c in data.columns if c in ("L", *sets[0].by)]
        delta = data["aic"] - data.groupby(keys)["aic"].transform("min")
        data["delta_aic"] = delta
        display.insert(display.columns.get_loc("AIC") + 1, "ΔAIC", delta.map(fmt).to_numpy())
    bounded = sorted({f"{s.kind} {f.form} ({f.label}): {', '.join(f.at_bounds)}"
                      for s in sets for f in s.results if f.at_bounds})
    if bounded:
        notes.append("coefficients at a bound of the form (the fit would go further; its CI is "
                     "not to be trusted): " + "; ".join(bounded))
    if any(c.unidentified for s in sets for f in s.results for c in f.coefficients.values()):
        notes.append("held: the rows hold one RFT size, so they cannot say how RFT recovers; "
                     "the law claims no recovery (c = 0) until rows at a second D exist")
    notes.insert(0, f"rows: {sets[0].subset}; held-out MAPE: the law fitted without the "
                    "split's test rows predicts them (r:0.5: fit r ≤ 0.5, predict r > 0.5; D: "
                    "predict the largest D; model: leave one model out)")
    return data, display, notes


def _fit_table(name: str) -> Callable[[Analysis], Built]:
    d = FIT_TABLES[name]
    return lambda a: _fit_rows(d.sets(a), d.paper)


# ---------------------------------------------------------------- paper and planner


def _paper(a: Analysis) -> Built:
    rows, shown = [], []
    for table, d in FIT_TABLES.items():
        for s in d.sets(a):
            for f in s.results:
                name = d.paper(f, s.kind)
                if name is None:
                    continue
                pub = get_law(name)
                row: dict[str, Any] = {"table": table, "fit": f.name, "paper": name}
                show = dict(row)
                for coef, symbol in get_form(f.form).symbols().items():
                    c = f.coefficients.get(coef)
                    p = pub.coefficients.get(coef)
                    if c is None or p is None:
                        continue
                    inside = bool(c.ci_low <= p <= c.ci_high)
                    row.update({coef: c.estimate, f"{coef}_lo": c.ci_low,
                                f"{coef}_hi": c.ci_high, f"{coef}_paper": p,
                                f"{coef}_paper_in_ci": inside})
                    show[f"{symbol} ours [CI]"] = fmt_ci(c.estimate, c.ci_low, c.ci_high)
                    show[f"{symbol} paper"] = fmt(p) + (" ✓" if inside else "")
                rows.append(row)
                shown.append(show)
    if not rows:
        raise Skip("no fitted law has a published counterpart of the same form")
    notes = ["✓: the paper's value lies inside our confidence interval"]
    return pd.DataFrame(rows), pd.DataFrame(shown).fillna("–"), notes


def _params(a: Analysis, model: str) -> float | None:
    for r in a.study.records:
        if r.config.model == model and r.config.is_base:
            total = r.params.get("total")
            if isinstance(total, int | float) and total > 0:
                return float(total)
    return None


def _targets(a: Analysis, kind: str, f: FitResult) -> list[tuple[str, float]]:
    """(dataset, L0) of the base model rows the plan of fit ``f`` targets (the zero-shot mean
    for accuracy when the study has one; a per-task law's task)."""
    rows, _ = a.rows(kind, "all")
    mine = rows[(rows["method"] == f.group["method"]) & (rows["metric"] == f.metric)]
    if "dataset" in f.group:
        mine = mine[mine["dataset"] == f.group["dataset"]]
    out = mine.groupby("dataset", sort=True)["L0"].first()
    return [(str(d), float(v)) for d, v in out.items()]


@dataclass(frozen=True)
class PlanRow:
    """A row of the plan table: the planner's answer for one method's best law on one dataset
    at ``sigma``. With a feasible choice: its ratio ``r``, the RFT it needs, L predicted at the
    RFT budget (``L_pred``, prediction interval ``L_low``..``L_high``) and at the RFT it needs
    (``L_at_need``, ``low_at_need``..``high_at_need``); without one, a ``note`` says why."""

    sigma: float
    L: str
    metric: str
    method: str
    dataset: str
    L0: float
    form: str
    law: str
    target: str
    heldout_mape_pct: float | None
    r: float | None = None
    D_needed: float | None = None
    D_budget: float | None = None
    L_pred: float | None = None
    L_low: float | None = None
    L_high: float | None = None
    target_value: float | None = None
    params_after: float | None = None
    L_at_need: float | None = None
    low_at_need: float | None = None
    high_at_need: float | None = None
    note: str = ""


def _goal(metric: str) -> str:
    """The target relative to L0 at σ, e.g. ``loss ≤ L0/σ``."""
    return f"{metric} {'≥ σ·L0' if get_metric(metric).higher_is_better else '≤ L0/σ'}"


def _plan_row(a: Analysis, kind: str, f: FitResult, sigma: float, dataset: str,
              L0: float) -> PlanRow:
    """The planner's answer for one method's best law on one dataset at ``sigma``: the largest
    ratio (fewest parameters) that still meets the target with the study's largest D."""
    model = str(a.laws["model"].iloc[0]) if a.laws["model"].nunique() == 1 else "model"
    law = f.law()
    h = f.heldout.get(RANK_SPLIT)
    row = PlanRow(sigma, kind, f.metric, str(f.group.get("method", "")), dataset, L0, f.form,
                  law.name, _goal(f.metric),
                  None if h is None else h.mape_pct)
    D = float(a.laws["D"].max()) if len(a.laws) else 0.0
    params = _params(a, model)
    try:
        spec = parse_plan({
            "target": {"metric": f.metric, "sigma": sigma},
            "budget": {"rft_tokens": D},
            "candidates": [{"name": model, "params": params, "L0": {f.metric: L0},
                            "law": f"{a.laws_file}#{law.name}"}],
            "objective": "smallest",
        })
        result = plan(spec)
        if not result.choices:
            return replace(row, note=result.infeasible.get(model, "no feasible choice"))
        c = result.choices[0]
        at = law.predict(L0, c.r, c.D_needed)  # the plan's one budget: the D it needs
    except LawError as exc:
        return replace(row, note=str(exc))
    return replace(row, r=c.r, D_needed=c.D_needed, D_budget=c.D, L_pred=c.L, L_low=c.pi_low,
                   L_high=c.pi_high, target_value=c.target, params_after=c.params_after,
                   L_at_need=float(at.L[0]),
                   low_at_need=None if at.pi_low is None else float(at.pi_low[0]),
                   high_at_need=None if at.pi_high is None else float(at.pi_high[0]))


def _plan_display(rows: list[PlanRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        "σ": fmt(row.sigma), "L": row.L, "method": row.method,
        "dataset": row.dataset, "L0": fmt(row.L0), "target": row.target,
        "form (held-out MAPE)": f"{row.form} ({pct(row.heldout_mape_pct)})",
        "largest r": fmt(row.r), "D needed": fmt(row.D_needed),
        "L predicted [95% PI]": "–" if row.L_pred is None
        else fmt_ci(row.L_pred, row.L_low, row.L_high),
        "params after": "–" if row.params_after is None
        else f"{row.params_after / 1e6:.4g} M",
        "note": row.note,
    } for row in rows])


PLANNED = tuple(stage_metric(kind).name for kind in HEADLINE)
"""The metrics the report plans with (each stage's L)."""
PLAN_NOTES = [
    f"target relative to the uncompressed model: {', '.join(map(_goal, PLANNED))}",
    "law: the method's feasible form with the lowest held-out MAPE (fit r ≤ 0.5, predict r > 0.5)",
    "largest r: the most compressed feasible ratio (grid step 0.05) with at most the study's "
    "largest RFT size D; L predicted there, with its 95% prediction interval",
]


def _plans(a: Analysis, sigmas: tuple[float, ...]) -> list[PlanRow]:
    if a.laws_file is None:
        raise Skip("the fitted laws were not written")
    rows = []
    for kind in LAW_KINDS:
        for f in a.best(kind):
            if f.metric not in PLANNED:
                continue
            for dataset, L0 in _targets(a, kind, f):
                rows += [_plan_row(a, kind, f, sigma, dataset, L0) for sigma in sigmas]
    if not rows:
        raise Skip("no law could be fitted to plan with")
    return rows


def _plan(a: Analysis) -> Built:
    rows = _plans(a, SIGMAS)
    return pd.DataFrame(map(asdict, rows)), _plan_display(rows), list(PLAN_NOTES)


def _compared(a: Analysis) -> Iterator[tuple[str, FitResult, int, dict[str, Any],
                                             pd.DataFrame]]:
    """(kind, fit, rank, group without the metric, the group's rows) of every form compared on
    the intrinsic, extrinsic and per-task rows, per method."""
    for kind in LAW_KINDS:
        found = a.compared(kind)
        if found is None:
            continue
        table_rows, _ = a.rows(kind, "all")
        for f, rank in zip(found.fits, found.ranks, strict=True):
            group = {k: v for k, v in f.group.items() if k != "metric"}
            mine = table_rows
            for k, v in group.items():
                mine = mine[mine[k].astype(str) == str(v)]
            yield kind, f, rank, group, mine


def _answer(a: Analysis) -> Built:
    """The best law per method (and task) by held-out error, against the paper's Eq. 1 on the
    same split, and the planner's recommendation at σ = 0.9."""
    rows, shown = [], []
    eq1 = {(kind, tuple(f.group.items())): f for kind, f, _, _, _ in _compared(a)
           if f.form == "eq1"}
    chosen = {(kind, id(f)) for kind in LAW_KINDS for f in a.best(kind)}
    for kind, best, _, group, mine in _compared(a):
        if (kind, id(best)) in chosen:
            h = best.heldout[RANK_SPLIT]  # a compared fit carries every split of a.splits
            paper = eq1.get((kind, tuple(best.group.items())))
            eq1_mape = paper.heldout[RANK_SPLIT].mape_pct if paper else None
            floor = noise_floor(mine[mine["metric"] == best.metric])
            points = h.abs_error_points
            rows.append({**group, "L": kind, "metric": best.metric, "form": best.form,
                         "feasible": best.feasible, "n": best.n, "heldout_n": h.n,
                         "mape_pct": h.mape_pct, "abs_error_points": points,
                         "noise_floor_points": h.noise_floor_points,
                         "coverage": h.coverage, "eq1_mape_pct": eq1_mape,
                         "noise_floor_pct": floor["mape_pct"] if floor else None,
                         "law": best.law().formula()})
            error = f"{pct(h.mape_pct)} (n={h.n})"
            if points is not None:
                error += f"; {points:.1f} points (noise floor {fmt(h.noise_floor_points)})"
            shown.append({**group, "L": f"{kind}: {best.metric}", "best form": best.form + (
                "" if best.feasible else " (no feasible form qualifies)") + (
                f" ({', '.join(best.at_bounds)} at a bound)" if best.at_bounds else ""),
                f"held-out error {RANK_SPLIT}": error,
                "95% PI covers": pct(None if h.coverage is None else 100 * h.coverage, 0),
                "Eq. 1 held-out MAPE": pct(eq1_mape),
                "seed noise floor": pct(floor["mape_pct"]) if floor else "– (one seed)",
                "law": best.law().formula()})
    if not rows:
        raise Skip("no law could be fitted")
    notes = ["held-out error: fitted on r ≤ 0.5 (and the baselines), predicting every row with "
             "r > 0.5; lower is better; for accuracy also the mean absolute error in points, "
             "beside the noise floor its documents imply (the error of a perfect law); the seed "
             "noise floor is the MAPE between seeds of the same experiment"]
    notes += [f"{kind}: {why}" for kind in LAW_KINDS if (why := a.evidence_note(kind))]
    try:
        for r in _plans(a, (ANSWER_SIGMA,)):
            if r.L != "intrinsic" and r.metric != stage_metric("extrinsic").name:
                continue
            sign = "≥" if get_metric(r.metric).higher_is_better else "≤"
            rec = (f"r = {fmt(r.r)} with D = {r.D_needed:,.0f} tokens of RFT keeps "
                   f"{r.dataset} {r.metric} {sign} {fmt(r.target_value)} (σ = "
                   f"{ANSWER_SIGMA}); predicted there "
                   f"{fmt_ci(r.L_at_need, r.low_at_need, r.high_at_need)} "
                   "(95% PI)" if r.r is not None else r.note)
            notes.append(f"planner, {r.method} ({r.form}): {rec}")
    except Skip as why:
        notes.append(f"planner: {why}")
    return pd.DataFrame(rows), pd.DataFrame(shown), notes


def _heldout(a: Analysis) -> Built:
    """Every form on every method, ranked by held-out MAPE, with the other splits beside."""
    rows, shown = [], []
    for kind, f, rank, group, _ in _compared(a):
        held, held_shown = _heldout_cells(f)
        h0 = f.heldout[RANK_SPLIT]
        rows.append({**group, "L": kind, "metric": f.metric, "rank": rank, "form": f.form,
                     "feasible": f.feasible, "k": len(f.coefficients), "n": f.n, "aic": f.aic,
                     **held})
        shown.append({**group, "L": f"{kind}: {f.metric}", "#": str(rank), "form": f.form,
                      "feasible": "yes" if f.feasible else "no", "k": str(len(f.coefficients)),
                      **held_shown,
                      f"MAPE L−L0 {RANK_SPLIT}": pct(h0.degradation_mape_pct),
                      f"PI coverage {RANK_SPLIT}": pct(None if h0.coverage is None
                                                       else 100 * h0.coverage, 0),
                      "AIC": fmt(f.aic, 4)})
    if not rows:
        raise Skip("no form could be fitted")
    notes = ["ranked within each method by held-out MAPE on r:0.5; every registered form "
             "(complaw.laws.forms) of the metric is fitted"]
    return pd.DataFrame(rows), pd.DataFrame(shown).fillna("–"), notes


def _prior(a: Analysis) -> Built:
    """A study run with a prior (`complaw run --prior`): each new model's law from the prior
    and its own rows, and how far its rows moved each coefficient from the prior's mean."""
    from complaw.experiment.folder import StudyFolder
    from complaw.experiment.records import load_law_table
    from complaw.laws.prior import prior_laws

    design = StudyFolder(a.study.folder).read_design() or {}
    settings = design.get("settings", {})
    if not settings.get("prior"):
        raise Skip("not run with a prior (complaw run --prior STUDY)")
    laws = prior_laws(load_law_table(settings["prior"]), a.study.laws,
                      metric=settings.get("metric", "loss"),
                      form=settings.get("form") or design.get("form"),  # the form it ran with
                      share=settings.get("share") or True, trend=settings.get("trend") or (),
                      name=settings["prior"])
    rows, shown = [], []
    for law in laws:
        for name, m in law.moved().items():
            rows.append({"model": law.model, "rows": law.rows, "coef": name, **m})
            shown.append({"model": law.model, "rows": str(law.rows), "coefficient": name,
                          "prior mean": fmt(m["prior"]), "this study": fmt(m["posterior"]),
                          "moved (prior s.d.)": f"{m['moved_sd']:+.2f}"})
    trend = settings.get("trend") or []
    notes = [f"prior: {settings['prior']} (its models' pooled {laws[0].population.form} law "
             f"of {settings.get('metric', 'loss')}"
             + (f", {', '.join(trend)} following model size N0" if trend else "") + "); "
             + "; ".join(f"{w.model}: {w.law.formula()}" for w in laws)]
    return pd.DataFrame(rows), pd.DataFrame(shown), notes


# ---------------------------------------------------------------- the registry

for _spec in (
    TableSpec("answer", "answer", "The best law per method",
              "The feasible form (L = L0 at r = 0) with the lowest held-out error, against the "
              "paper's Eq. 1, and the planner's recommendation.", _answer),
    TableSpec("heldout", "laws", "Every form, ranked by held-out error",
              "Each registered form fitted per method; MAPE of the rows each split holds out.",
              _heldout),
    TableSpec("config", "study", "Configuration", "What the records cover.", _configuration),
    TableSpec("counts", "study", "Records", "Records per kind and status.", _counts),
    TableSpec("timings", "study", "Time per stage",
              "Seconds per stage: the records' own timings, the runner's log, study.json.",
              _timings),
    TableSpec("environment", "study", "Environment", "As recorded.", _environment),
    TableSpec("failures", "study", "Failed records", "First line of each error.", _failures),
    TableSpec(
        "table1", "laws", "Table 1: compression laws (Eq. 1-3)",
        "Eq. 1-3 (and the additive form) fitted on all models, intrinsic (test loss) and "
        "extrinsic (mean zero-shot accuracy); no intercept, as in the paper.",
        _fit_table("table1"),
    ),
    TableSpec("table2", "laws", "Table 2: per model", "Eq. 1 fitted on each model.",
              _fit_table("table2")),
    TableSpec("table3", "laws", "Table 3: per calibration",
              "Eq. 1 fitted on calibration-free and calibration-based compression.",
              _fit_table("table3")),
    TableSpec("table4", "laws", "Table 4: runtime", "S = C (1+r)^β per model, C = S0 e^const.",
              _fit_table("table4")),
    TableSpec("table6", "laws", "Table 6: per test dataset",
              "Eq. 1 on test loss, per test dataset.", _fit_table("table6")),
    TableSpec("paper", "paper", "Our exponents beside the paper's",
              "The published law of the same form and group (complaw.laws.published).", _paper),
    TableSpec("prior", "laws", "The law of each new model from the prior",
              "Each model's law from the prior study's pooled law, updated by its own rows: "
              "how far they moved each coefficient.", _prior),
    TableSpec("plan", "plan", "The planner for this study's models",
              "Per method and dataset, the method's best law by held-out error, at σ = 0.8 and "
              "0.9.", _plan),
):
    TABLES.add(_spec.name, _spec)
