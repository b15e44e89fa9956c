"""The report's tables: one registry, name -> `TableSpec`; each builds a numeric frame (CSV)
and a display frame (HTML, Markdown, LaTeX) from an `Analysis`, or raises `Skip`.

Sections: ``study`` (what was run, where, how long), ``laws`` (the paper's Tables 1, 2, 3, 4
and 6 with our additions: CIs, centred R², AIC/BIC, held-out error), ``paper`` (our exponents
beside the published ones), ``plan`` (the planner for the study's own models).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.fit import FitResult
from complaw.laws.forms import CONST
from complaw.laws.planner import parse_plan, plan
from complaw.laws.published import get_law, published_laws
from complaw.laws.theory import critical_ratio
from complaw.registry import Registry
from complaw.report.analysis import KIND_COLUMN, METRIC_OF, POWER_FORMS, Analysis, FitSet
from complaw.report.study import MEAN_PREFIX, Skip

SECTIONS = ("study", "laws", "paper", "plan")
SIGMAS = (0.8, 0.9)
COEFS = {"alpha": "α", "beta": "β", "gamma": "γ", CONST: "const"}


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
        kind = ((r.get("config") or {}).get("eval") or {}).get("kind") or r.get("kind", "?")
        row = kinds.setdefault(str(kind), {"ok": 0, "failed": 0, "other": 0})
        status = r.get("status")
        row[status if status in ("ok", "failed") else "other"] += 1
    df = pd.DataFrame([{"kind": k, **v} for k, v in sorted(kinds.items())])
    if df.empty:
        raise Skip(f"no records in {s.records_dir}")
    total = {"kind": "total", **{c: int(df[c].sum()) for c in ("ok", "failed", "other")}}
    df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    notes = [f"{file}: unreadable ({why})" for file, why in s.problems]
    counted = {k: v for k, v in s.meta.items() if k in ("done", "failed", "pending", "counts")}
    if counted:
        notes.append("study.json: " + json.dumps(counted, default=str))
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
    """Seconds per stage: summed over the records' timings, the runner's log and study.json."""
    rows: dict[str, dict[str, float]] = {}
    for r in a.study.records:
        for stage, sec in (r.get("timings") or {}).items():
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
    meta = _flatten(a.study.meta.get("timings") or {})
    for stage, sec in meta.items():
        if isinstance(sec, int | float):
            rows.setdefault(stage, {})["seconds (study.json)"] = float(sec)
    if not rows:
        raise Skip("no timings in the records, log.jsonl or study.json")
    df = pd.DataFrame([{"stage": k, **v} for k, v in sorted(rows.items())])
    return same(df)


def _environment(a: Analysis) -> Built:
    values: dict[str, set[str]] = {}
    sources = [r.get("environment") or {} for r in a.study.records]
    sources.append(a.study.meta.get("environment") or {})
    for env in sources:
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
    for metric in ("loss", "accuracy", "runtime"):
        rows = obs[obs["metric"] == metric]
        if len(rows):
            items.append((f"{metric} datasets", values("dataset", rows)))
    df = pd.DataFrame(items, columns=["item", "values"])
    return df, df, []


def _failures(a: Analysis) -> Built:
    rows = [
        {
            "record": r.get("id"),
            "stage": r.get("failed_stage") or ((r.get("config") or {}).get("eval") or {}).get(
                "kind") or r.get("kind"),
            "model": (r.get("config") or {}).get("model"),
            "error": str(r.get("error") or "").splitlines()[0][:200] if r.get("error") else "",
        }
        for r in a.study.records
        if r.get("status") == "failed"
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
    if f.form not in ("eq1", "eq2", "eq3"):
        return None
    return _known(f"paper:all:{kind}" + ("" if f.form == "eq1" else f":{f.form}"))


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
            a.fits(kind, form)
            for kind in ("intrinsic", "extrinsic")
            for form in ("eq1", "eq2", "eq3", "additive")
        ],
        _paper_all,
    ),
    "table2": FitTableDef(
        lambda a: [a.fits(kind, "eq1", ("model",)) for kind in ("intrinsic", "extrinsic")],
        _paper_model,
    ),
    "table3": FitTableDef(
        lambda a: [
            a.fits(kind, "eq1", (KIND_COLUMN,), "all") for kind in ("intrinsic", "extrinsic")
        ],
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
    per_model = [a.fits(kind, form, ("model",)) for kind in ("intrinsic", "extrinsic")
                 for form in POWER_FORMS]
    return [s for d in FIT_TABLES.values() for s in d.sets(a)] + per_model


def _fit_rows(sets: list[FitSet], paper: Callable[[FitResult, str], str | None]) -> Built:
    rows, shown, notes = [], [], []
    unfitted: dict[tuple[str, str, str], list[str]] = {}
    for s in sets:
        if s.single_D and s.results and "gamma" in s.results[0].coefficients:
            notes.append(f"{s.kind} {s.form}: D takes a single value, so γ is only a constant "
                         "factor here (no RFT effect is measured)")
        for label, why in s.skipped:
            unfitted.setdefault((s.kind, label, why), []).append(s.form)
        for f in s.results:
            group = {k: v for k, v in f.group.items() if k != "metric"}
            row: dict[str, Any] = {**group, "L": s.kind, "form": f.form, "n": f.n}
            show: dict[str, Any] = {**group, "L": s.kind, "form": f.form, "n": str(f.n)}
            show["law"] = f.law().formula()
            for name, symbol in COEFS.items():
                c = f.coefficients.get(name)
                if c is None:
                    continue
                row.update({name: c.estimate, f"{name}_lo": c.ci_low, f"{name}_hi": c.ci_high,
                            f"{name}_se": c.stderr})
                show[f"{symbol} [{f.level:.0%} CI]"] = fmt_ci(c.estimate, c.ci_low, c.ci_high)
            mape = f.logo["mape"] if f.logo else None
            row.update(
                adj_r2=f.adj_r2, r2_kind=f.r2_kind, adj_r2_centered=f.adj_r2_centered,
                adj_r2_uncentered=f.adj_r2_uncentered, f=f.f, f_pvalue=f.f_pvalue, aic=f.aic,
                bic=f.bic, heldout_mape=mape, heldout_by=f.logo["by"] if f.logo else None,
                subset=s.subset, paper=paper(f, s.kind),
            )
            show.update({
                "adj. R² (reported)": f"{fmt(f.adj_r2, 4)} ({f.r2_kind[:3]}.)",
                "adj. R² centred": fmt(f.adj_r2_centered, 4),
                "F": fmt(f.f, 4),
                "AIC": fmt(f.aic, 4),
                "BIC": fmt(f.bic, 4),
                "held-out MAPE": "–" if mape is None else f"{mape:.1%} (by {f.logo['by']})",
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
    notes.insert(0, f"rows: {sets[0].subset}")
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
                for coef, symbol in COEFS.items():
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


def base_values(a: Analysis) -> pd.DataFrame:
    """The base models' values (base rows of the observations)."""
    obs = a.study.obs
    return obs[obs["base"].astype(bool)]


def _params(a: Analysis, model: str) -> float | None:
    for r in a.study.records:
        cfg = r.get("config") or {}
        if cfg.get("model") == model and not cfg.get("compression") and not cfg.get("recovery"):
            total = (r.get("params") or {}).get("total")
            if isinstance(total, int | float) and total > 0:
                return float(total)
    return None


def _plan_row(a: Analysis, law_file: Path, f: FitResult, kind: str, sigma: float,
              dataset: str, L0: float) -> dict[str, Any]:
    """The planner's answer for one model, metric and sigma, with r_crit."""
    model = str(f.group["model"])
    law = f.law()
    target = sigma if kind == "extrinsic" else 1.0 / sigma
    row: dict[str, Any] = {"sigma": sigma, "L": kind, "dataset": dataset, "model": model,
                           "L0": L0, "law": law.name}
    try:
        crit = critical_ratio(law, target, n_draws=500)
        row.update(r_crit=crit.r_crit, r_crit_lo=crit.ci[0] if crit.ci else None,
                   r_crit_hi=crit.ci[1] if crit.ci else None, regime=crit.regime)
        D = float(a.laws["D"].max()) if len(a.laws) else 0.0
        spec = parse_plan({
            "target": {"metric": METRIC_OF[kind], "retention": target,
                       "relative_to": "L0^alpha"},
            "budget": {"rft_tokens": D},
            "candidates": [{"name": model, "params": _params(a, model) or 1.0,
                            "L0": {METRIC_OF[kind]: L0}, "law": f"{law_file}#{law.name}"}],
            "objective": "smallest",
        })
        result = plan(spec)
        if result.choices:
            c = result.choices[0]
            row.update(r=c.r, D_needed=c.D_needed, D_budget=c.D, L_pred=c.L, L_low=c.L_low,
                       L_high=c.L_high, params_after=c.params_after if _params(a, model) else None)
        else:
            row["note"] = result.infeasible.get(model, "no feasible choice")
    except LawError as exc:
        row["note"] = str(exc)
    return row


def _plan(a: Analysis) -> Built:
    law_file = a.laws_file
    if law_file is None:
        raise Skip("the fitted laws were not written")
    base = base_values(a)
    rows = []
    for kind in ("extrinsic", "intrinsic"):
        for f in a.per_model(kind):
            model = str(f.group["model"])
            mine = base[(base["model"] == model) & (base["metric"] == METRIC_OF[kind])]
            if kind == "extrinsic" and mine["dataset"].str.startswith(MEAN_PREFIX).any():
                mine = mine[mine["dataset"].str.startswith(MEAN_PREFIX)]
            for dataset, part in mine.groupby("dataset", sort=True):
                for sigma in SIGMAS:
                    rows.append(_plan_row(a, law_file, f, kind, sigma, str(dataset),
                                          float(part["L"].iloc[0])))
    if not rows:
        raise Skip("no per-model law (Table 2) to plan with")
    data = pd.DataFrame(rows)
    shown = []
    for row in rows:
        shown.append({
            "σ": fmt(row["sigma"]), "L": row["L"], "dataset": row["dataset"],
            "model": row["model"], "law": row["law"].split(":")[1], "L0": fmt(row["L0"]),
            "r_crit [CI]": fmt_ci(row["r_crit"], row.get("r_crit_lo"), row.get("r_crit_hi"))
            if "r_crit" in row else "–",
            "largest r": fmt(row.get("r")),
            "D needed": fmt(row.get("D_needed")),
            "L predicted [CI]": fmt_ci(row["L_pred"], row.get("L_low"), row.get("L_high"))
            if "L_pred" in row else "–",
            "params after": "–" if row.get("params_after") is None
            else f"{row['params_after'] / 1e6:.4g} M",
            "note": row.get("note", ""),
        })
    notes = [
        "target as in the paper's Corollary 3.2: accuracy ≥ σ·L0^α; loss ≤ L0^α/σ",
        "largest r: the most compressed feasible ratio (grid step 0.05) with at most the "
        "study's largest RFT size D; L predicted there",
    ]
    return data, pd.DataFrame(shown), notes


# ---------------------------------------------------------------- the registry

for _spec in (
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
    TableSpec("plan", "plan", "The planner for this study's models",
              "Per model, its own law (Table 2's Eq. 1; Eq. 2 or 3 where Eq. 1 cannot be "
              "fitted), at σ = 0.8 and 0.9.", _plan),
):
    TABLES.add(_spec.name, _spec)
