"""Commands on compression laws: fit, predict, critical, plan, laws (no torch).

Each command parses its flags, calls one function of `complaw.laws` and prints a rich table,
or with ``--json`` only JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from complaw.cli.app import app, console, err_console
from complaw.errors import LawError

if TYPE_CHECKING:
    from complaw.laws.holdout import HeldOutSummary
    from complaw.study.verify import Verification


def _emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, allow_nan=False))


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def _count(x: float) -> str:
    """A parameter count, e.g. 2.88B or 135M."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:g}"


TREND_HELP = ("per-group coefficients of a pooled fit whose mean moves with model size "
              "(log10 of N0, the base model's non-embedding parameters, from the records), "
              "comma-separated, e.g. h: how a law transfers to a model of another size")


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _load_records(*records: Path):
    """The validated law table of ``records`` (several: their rows together, a measurement
    that two of them hold counted once); skipped metrics are named on stderr."""
    from complaw.experiment.records import load_law_table
    from complaw.laws.table import merge

    def skipped(metrics: list[str]) -> None:
        err_console.print(f"skipped metrics without a law: {', '.join(metrics)}",
                          highlight=False)

    return merge([load_law_table(r, skipped) for r in records])


def _heldout_cell(h: HeldOutSummary | None) -> str:
    if h is None or h.mape_pct is None:
        return "-"
    deg = "-" if h.degradation_mape_pct is None else f"{h.degradation_mape_pct:.1f}%"
    cov = "-" if h.coverage is None else f"{h.coverage:.0%}"
    rand = ("" if not h.random else
            f"; random rows {h.random['median_mape_pct']:.1f}% (median of {h.random['draws']})")
    return f"{h.mape_pct:.1f}% (n={h.n}; L-L0 {deg}; PI covers {cov}{rand})"


def _noise_floors(df, fits) -> dict[str, dict[str, Any] | None]:
    """The seed noise floor of each fit's group (None without two seeds)."""
    from complaw.laws import noise_floor

    out = {}
    for f in fits:
        rows = df
        for k, v in f.group.items():
            rows = rows[rows[k].astype(str) == str(v)]
        out[f.label] = noise_floor(rows)
    return out


@app.command("fit")
def fit_command(
    records: list[Path] = typer.Argument(
        ..., help="CSV/Parquet law table or a study directory; several: their rows together "
        "(e.g. two studies' models in one leave-one-model-out)"),
    form: str = typer.Option(
        None, "--form",
        help="a law form; default: each metric's own, pooled its pooled one (complaw forms "
        "lists them)",
    ),
    compare: bool = typer.Option(
        False, "--compare", help="fit every form and rank them by held-out MAPE (then AIC)"
    ),
    by: list[str] = typer.Option(
        None,
        "--by",
        help="group columns, repeatable or comma-separated (model, calibration, "
        "dataset, ...); metric is always a group",
    ),
    holdout: list[str] = typer.Option(
        None, "--holdout",
        help="held-out split, repeatable: r:X (fit r <= X, predict r > X), D (the largest D), "
        "a column (dataset, model, method: leave one out), model:K (leave it out but fit K of "
        "its rows, chosen variance-optimally), kfold:K, usable (extrapolation in r among rows "
        "with L <= 2 L0); --compare ranks by the first (default r:0.5)",
    ),
    intercept: bool = typer.Option(
        None,
        "--intercept/--no-intercept",
        help="add a free constant to a linear form (default: none for eq1-3, as in the paper; "
        "yes for runtime)",
    ),
    bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="bootstrap resamples (0: off)"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    bootstrap_by: str = typer.Option(
        None, "--bootstrap-by", help="resample whole groups of this column (default: rows)"
    ),
    level: float = typer.Option(0.95, "--level", min=0.5, max=0.999, help="CI level"),
    share: list[str] = typer.Option(
        None, "--share",
        help="pool the --by groups in one fit, sharing these coefficients (comma-separated, "
        "e.g. k,h,c); the others vary per group, shrunk towards their mean by a strength "
        "estimated from the data",
    ),
    pool: bool = typer.Option(
        False, "--pool", help="pool the --by groups, sharing each form's declared coefficients"
    ),
    trend: list[str] = typer.Option(
        None, "--trend", help=TREND_HELP),
    as_json: bool = typer.Option(
        False, "--json", help="print only JSON: a list of fits (schema in docs/laws.md)"
    ),
) -> None:
    """Fit compression laws on records, with held-out error (Tables 1-4, 6: --by ...)."""
    from complaw.laws import compare as compare_forms
    from complaw.laws import fit

    if compare and form:
        raise LawError("give --form or --compare, not both (--compare fits every form)")
    shared = _split(share)
    if compare and (shared or trend):
        raise LawError("--share and --trend name one form's coefficients; with --compare use "
                       "--pool (each form shares its declared ones)")
    df = _load_records(*records)
    group_by = _split(by)
    splits = _split(holdout)
    if compare:
        result = compare_forms(df, None, group_by, holdout=splits or ["r:0.5"], level=level,
                               pool=pool)
        fits = result.fits
    else:
        fits = list(fit(df, form, group_by, intercept=intercept, level=level,
                        bootstrap=bootstrap, seed=seed, bootstrap_by=bootstrap_by,
                        holdout=splits, pool=shared or pool, trend=_split(trend)))
    floors = _noise_floors(df, fits)
    if as_json:
        payload = result.to_dict() if compare else [f.to_dict() for f in fits]
        for d, f in zip(payload, fits, strict=True):
            d["noise_floor"] = floors[f.label]
        _emit_json(payload)
        return
    if compare:
        _print_comparison(result, floors)
        return
    _print_fits(fits, level)


def _print_fits(fits, level: float) -> None:
    table = Table(title="fitted laws", caption="CI: t-based; bootstrap CI with --bootstrap")
    for col in ("group", "form", "coef", "estimate", "stderr", f"{level:.0%} CI",
                "bootstrap CI"):
        table.add_column(col, justify="left" if col in ("group", "form", "coef") else "right")
    for f in fits:
        for i, (name, c) in enumerate(f.coefficients.items()):
            boot = "-" if c.boot_low is None else f"[{c.boot_low:.4g}, {c.boot_high:.4g}]"
            table.add_row(
                f.label if i == 0 else "",
                f.form if i == 0 else "",
                name,
                f"{c.estimate:.4g}",
                f"{c.stderr:.2g}",
                f"[{c.ci_low:.4g}, {c.ci_high:.4g}]",
                boot,
                end_section=i == len(f.coefficients) - 1,
            )
    console.print(table)
    splits = list(dict.fromkeys(s for f in fits for s in f.heldout))
    stats = Table(
        title="goodness of fit",
        caption="* = the adj. R² statsmodels reports (uncentered when the design has no "
        "constant column); AIC on the scale of L; held-out: MAPE of L (test rows; MAPE of "
        "L - L0; share of test rows inside the 95% prediction interval)",
    )
    for col in ("group", "law", "n", "adj. R² uncentered", "adj. R² centered", "F", "AIC",
                *[f"held-out {s}" for s in splits]):
        stats.add_column(col, justify="left" if col in ("group", "law") else "right")
    for f in fits:
        star = {f.r2_kind: "*"}
        stats.add_row(
            f.label,
            f.law().formula(),
            str(f.n),
            _fmt(f.adj_r2_uncentered) + star.get("uncentered", ""),
            _fmt(f.adj_r2_centered) + star.get("centered", ""),
            _fmt(f.f, 5),
            _fmt(f.aic, 5),
            *[_heldout_cell(f.heldout.get(s)) for s in splits],
        )
    console.print(stats)
    unfitted: dict[tuple[str, str], list[int]] = {}
    for f in fits:
        for split, h in f.heldout.items():
            if h.unfitted:
                unfitted.setdefault((split, "; ".join(h.why)), []).append(h.unfitted)
    for (split, why), counts in unfitted.items():
        console.print(f"held-out {split}: {sum(counts)} test row(s) of {len(counts)} group(s) "
                      f"not predicted, their fold could not be fitted: {why}", highlight=False)
    for p in dict.fromkeys(json.dumps(f.pooling, sort_keys=True) for f in fits if f.pooling):
        pooled = json.loads(p)
        spread = ", ".join(f"{k} {v:.3g} ({pooled['tau_scale'][k]})"
                           for k, v in pooled["tau"].items())
        trend = "".join(f"; {k} follows size: {v:+.3g} ({pooled['tau_scale'][k]}) per decade "
                        f"of N0 around {_count(pooled['trend_center']['N0'])}"
                        for k, v in pooled.get("trend", {}).items())
        moving = max(pooled.get("unsettled", {}).items(), key=lambda kv: abs(kv[1]),
                     default=None)
        unsettled = ("" if moving is None else
                     f"; the EM stopped at its {pooled['rounds']}-round cap, "
                     f"{'s' if moving[0] == 's' else 'tau ' + moving[0]} still moving by "
                     f"{moving[1]:+.2g} (relative) a round")
        console.print(f"pooled by {','.join(pooled['by'])} over {pooled['groups']} groups: "
                      f"shared {','.join(pooled['share']) or 'none'}; spread between groups "
                      f"(tau) {spread or '-'}{trend}{unsettled}", highlight=False)


def _print_comparison(result, floors) -> None:
    frame = result.frame()
    table = Table(
        title=f"forms ranked by held-out MAPE ({result.split})",
        caption="feasible: L = L0 at r = 0 for every D; AIC/BIC on the scale of L (Δ = 0 is "
        "the group's best); coverage: share of held-out rows inside the 95% prediction interval",
    )
    for col in ("group", "#", "form", "feasible", "k", "n", "held-out n", "MAPE", "MAPE L-L0",
                "coverage", "ΔAIC", "ΔBIC", "law"):
        table.add_column(col, justify="left" if col in ("group", "form", "law") else "right",
                         no_wrap=col == "form", overflow="fold")
    for (_, row), f in zip(frame.iterrows(), result.fits, strict=True):
        first = row["rank"] == 1
        table.add_row(
            f.label if first else "",
            str(row["rank"]),
            f.form,
            "yes" if f.feasible else "no",
            str(row["k"]),
            str(row["n"]),
            str(row["heldout_n"]),
            _pct(row["mape_pct"]),
            _pct(row["degradation_mape_pct"]),
            _pct(None if row["coverage"] is None else 100 * row["coverage"], 0),
            _fmt(row["delta_aic"], 4),
            _fmt(row["delta_bic"], 4),
            f.law().formula(),
        )
    console.print(table)
    for label, floor in floors.items():
        if floor:
            console.print(f"noise floor {label}: {floor['mape_pct']:.1f}% (one seed against the "
                          f"other {floor['seeds'] - 1}'s mean, {floor['n']} rows)",
                          highlight=False)


def _pct(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}%"


def _where(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in _split(values):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise LawError(f"--where {item!r}: write COLUMN=VALUE, e.g. method=prunenet")
        out[key.strip()] = value.strip()
    return out


def law_from_records(records: Path, where: dict[str, str], form: str | None, split: str):
    """The law of the rows of ``records`` matching ``where``: ``form`` fitted on them, or the
    feasible form with the lowest held-out MAPE on ``split``. Returns (law, fit)."""
    from complaw.laws import best_form, get_form
    from complaw.laws import fit as fit_law
    from complaw.laws.select import with_companions

    df = _load_records(records)
    where = dict(where)
    metric = where.pop("metric", None)
    for key, value in where.items():
        if key not in df.columns:
            raise LawError(f"--where {key}=...: no column {key!r}; columns: "
                           f"{', '.join(map(str, df.columns))}")
        df = df[df[key].astype(str) == value]
    if metric is not None:  # with the rows its forms read beside it (task loss for accuracy)
        df = with_companions(df, metric)
        if form and get_form(form).companion is None:
            df = df[df["metric"] == metric]
    if df.empty or (metric is not None and metric not in set(df["metric"])):
        raise LawError(f"no rows of {str(records)!r} match {where} and metric={metric}")
    found = (fit_law(df, form, holdout=[split]).only() if form
             else best_form(df, split, metric=metric))
    return found.law(), found


@app.command("predict")
def predict_command(
    L0: float = typer.Option(
        None, "--L0", help="the uncompressed model's value of the metric (with --prior: "
        "default each dataset's L0 in --records)"),
    r: list[float] = typer.Option(
        None, "--r", help="compression ratio(s) in [0, 1), repeatable (with --prior: optional)"),
    D: list[float] = typer.Option(None, "--D", help="RFT size(s), repeatable (default 0)"),
    law: str = typer.Option(
        None, "--law", help="published name (paper:...) or FILE.json[#NAME]; or use --records"
    ),
    records: Path = typer.Option(
        None, "--records",
        help="fit the law on these records (a study folder or CSV): the feasible form with "
        "the lowest held-out MAPE (any form when none is feasible), unless --form names one",
    ),
    where: list[str] = typer.Option(
        None, "--where", help="with --records: only rows with COLUMN=VALUE, repeatable"
    ),
    form: str = typer.Option(
        None, "--form", help="with --records: this form, not the best; with --prior: this form, "
        "not the metric's pooled one (complaw forms)"),
    holdout: str = typer.Option(
        "r:0.5", "--holdout", help="with --records: the split that chooses the best form"
    ),
    prior: Path = typer.Option(
        None, "--prior",
        help="a study folder or CSV of other models: the law of each model in --records is "
        "the pooled law of these (shared coefficients, spread between models) updated by its "
        "own rows",
    ),
    metric: str = typer.Option("loss", "--metric", help="with --prior: the metric"),
    share: list[str] = typer.Option(
        None, "--share", help="with --prior: the shared coefficients (default: the form's)"),
    trend: list[str] = typer.Option(None, "--trend", help=f"with --prior: {TREND_HELP}"),
    level: float = typer.Option(0.95, "--level", min=0.5, max=0.999, help="interval level"),
    as_json: bool = typer.Option(False, "--json", help="print only JSON"),
) -> None:
    """Predict L of a compressed model, for every (r, D) given, with confidence and prediction
    intervals when the law was fitted; with --prior, a new model's law from another study."""
    import numpy as np

    from complaw.laws import get_law

    if prior is not None:
        if records is None or law is not None:
            raise LawError("--prior needs --records NEW_STUDY (the new model's baseline and "
                           "rows) and no --law")
        _predict_from_prior(prior, records, metric, form, _split(share), _split(trend), L0, r,
                            D, level, as_json)
        return
    if L0 is None or not r:
        raise LawError("give --L0 and --r (or --prior with --records)")
    if (law is None) == (records is None):
        raise LawError("give exactly one of --law and --records")
    chosen = None
    if records is not None:
        the_law, chosen = law_from_records(records, _where(where), form, holdout)
    else:
        the_law = get_law(law)
    Ds = list(D) if D else [0.0]
    grid_r = np.repeat(np.asarray(r, dtype=float), len(Ds))
    grid_d = np.tile(np.asarray(Ds, dtype=float), len(r))
    pred = the_law.predict(L0, grid_r, grid_d, level=level)

    def pair(lo, hi, i):
        return None if lo is None else [float(lo[i]), float(hi[i])]

    rows = [
        {"r": float(grid_r[i]), "D": float(grid_d[i]), "L": float(pred.L[i]),
         "ci": pair(pred.low, pred.high, i), "pi": pair(pred.pi_low, pred.pi_high, i)}
        for i in range(len(grid_r))
    ]
    heldout = next(iter(chosen.heldout.values()), None) if chosen else None
    if as_json:
        _emit_json({
            "law": the_law.name, "form": the_law.form, "formula": the_law.formula(),
            "metric": the_law.metric, "L0": L0, "level": level,
            "heldout": None if heldout is None else heldout.to_dict(),
            "predictions": rows,
        })
        return
    why = the_law.source
    if heldout:
        why += f"; held-out {_heldout_cell(heldout)} on {heldout.split}"
    table = Table(
        title=f"{the_law.name}: {the_law.formula()}",
        caption=f"{the_law.metric}, L0 = {L0:g}; {why}"
        + ("" if pred.low is not None else "; no intervals: published laws carry no covariance"),
    )
    for col in ("r", "D", "L", f"{level:.0%} CI", f"{level:.0%} PI", "L / L0"):
        table.add_column(col, justify="right")

    def show(x):
        return "-" if x is None else f"[{x[0]:.4g}, {x[1]:.4g}]"

    for row in rows:
        table.add_row(f"{row['r']:g}", f"{row['D']:g}", f"{row['L']:.4g}", show(row["ci"]),
                      show(row["pi"]), f"{row['L'] / L0:.3f}")
    console.print(table)


def _new_models(records: Path):
    """The law rows of ``records`` (none where a study folder holds only baselines) and, for a
    study folder, its baselines (`base_table`: models with no other rows yet)."""
    import pandas as pd

    from complaw.experiment.records import NoLawRowsError, base_table
    from complaw.laws.table import COLUMNS

    bases = base_table(records) if records.is_dir() else None
    try:
        return _load_records(records), bases
    except NoLawRowsError:
        if bases is None or bases.empty:
            raise
        return pd.DataFrame(columns=list(COLUMNS)), bases


def _predict_from_prior(prior: Path, records: Path, metric: str, form: str | None,
                        share: list[str], trend: list[str], L0: float | None,
                        r: list[float] | None,
                        D: list[float] | None, level: float, as_json: bool) -> None:
    """``predict --prior``: each new model's law, how far its rows moved each coefficient from
    the prior, and its predictions at --r, --D (on each dataset's L0, or --L0)."""
    import numpy as np

    from complaw.laws.prior import prior_laws

    new, bases = _new_models(records)
    found = prior_laws(_load_records(prior), new, metric=metric, form=form,
                       share=share or True, trend=trend, name=str(prior), bases=bases)
    out = []
    for p in found:
        rows = new if p.rows else bases  # a model with only its baseline: its L0s
        rows = rows[(rows["model"] == p.model) & (rows["metric"] == metric)
                    & (rows["dataset"] == (p.dataset or rows["dataset"]))]
        l0s = ({"--L0": L0} if L0 is not None else
               rows.drop_duplicates("dataset").set_index("dataset")["L0"].to_dict())
        grid = [(x, d) for x in r or [] for d in (D or [0.0])]
        preds = []
        for dataset, base in l0s.items() if grid else ():
            pred = p.law.predict(base, [g[0] for g in grid], [g[1] for g in grid], level=level)
            preds += [{"dataset": dataset, "L0": float(base), "r": x, "D": d,
                       "L": float(pred.L[i]), "pi": [float(pred.pi_low[i]),
                                                     float(pred.pi_high[i])]}
                      for i, (x, d) in enumerate(grid)]
        sd = np.sqrt(np.maximum(np.diag(np.asarray(p.law.cov)), 0.0))
        out.append({**p.to_dict(), "stderr": dict(zip(p.law.coef_names, sd.tolist(),
                                                      strict=True)),
                    "level": level, "predictions": preds})
    if as_json:
        _emit_json(out)
        return
    for item, p in zip(out, found, strict=True):
        task = f" on {p.dataset}" if p.dataset else ""
        table = Table(title=f"{p.model}{task} from the prior {p.prior}: {item['formula']}",
                      caption=f"{metric}; {p.law.source}; moved: (posterior - prior mean) in "
                      "prior standard deviations")
        for col in ("coef", "prior mean", "estimate", "stderr", "moved (prior sd)"):
            table.add_column(col, justify="left" if col == "coef" else "right")
        for name, m in item["moved"].items():
            table.add_row(name, f"{m['prior']:.4g}", f"{m['posterior']:.4g}",
                          f"{item['stderr'][name]:.2g}", f"{m['moved_sd']:+.2f}")
        console.print(table)
        if item["predictions"]:
            ptable = Table(title=f"{p.model}: predictions")
            for col in ("dataset", "L0", "r", "D", "L", f"{level:.0%} PI"):
                ptable.add_column(col, justify="left" if col == "dataset" else "right")
            for q in item["predictions"]:
                ptable.add_row(q["dataset"], f"{q['L0']:.4g}", f"{q['r']:g}", f"{q['D']:g}",
                               f"{q['L']:.4g}", f"[{q['pi'][0]:.4g}, {q['pi'][1]:.4g}]")
            console.print(ptable)


@app.command("critical")
def critical_command(
    law: str = typer.Option(..., "--law", help="published name (paper:...) or FILE.json[#NAME]"),
    sigma: float = typer.Option(
        ..., "--sigma", help="recovery threshold: accuracy (0, 1) kept, loss > 1 allowed"
    ),
    r: list[float] = typer.Option(None, "--r", help="also the minimum RFT size D at these r"),
    draws: int = typer.Option(2000, "--draws", min=10, help="coefficient draws for the CI"),
    seed: int = typer.Option(0, "--seed", help="seed of the coefficient draws"),
    level: float = typer.Option(0.95, "--level", min=0.5, max=0.999, help="CI level"),
    as_json: bool = typer.Option(False, "--json", help="print only JSON"),
) -> None:
    """Critical compression ratio r_crit(sigma) of a law, and the minimum RFT size at given r."""
    from complaw.laws import critical_ratio, get_law, min_rft

    the_law = get_law(law)
    crit = critical_ratio(the_law, sigma, level=level, n_draws=draws, seed=seed)
    bounds = [min_rft(the_law, sigma, x, level=level, n_draws=draws, seed=seed) for x in r or []]
    if as_json:
        _emit_json({"critical": crit.to_dict(), "min_rft": [b.to_dict() for b in bounds]})
        return
    table = Table(title=f"{the_law.name}: {the_law.formula()}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("metric", the_law.metric)
    table.add_row("sigma", f"{sigma:g}")
    table.add_row("2^beta", f"{crit.threshold:.4g}")
    table.add_row("r_crit", f"{crit.r_crit:.4g}")
    if crit.ci is not None:
        table.add_row(
            f"r_crit {level:.0%} CI",
            f"[{crit.ci[0]:.4g}, {crit.ci[1]:.4g}] ({crit.draws} draws, "
            f"{crit.draws_infeasible} infeasible)",
        )
    table.add_row("answer", crit.message)
    console.print(table)
    if bounds:
        btable = Table(title=f"minimum RFT size D for sigma = {sigma:g}")
        for col in ("r", "D_min", f"{level:.0%} CI", "answer"):
            btable.add_column(col)
        for b in bounds:
            ci = "-" if b.ci is None else f"[{_fmt(b.ci[0])}, {_fmt(b.ci[1])}]"
            btable.add_row(f"{b.r:g}", _fmt(b.D), ci, b.message)
        console.print(btable)


@app.command("plan")
def plan_command(
    spec: Path = typer.Argument(..., help="plan YAML: target, budget, candidates (docs/laws.md)"),
    top: int = typer.Option(10, "--top", min=1, help="show this many choices"),
    verify: bool = typer.Option(
        False, "--verify",
        help="run the top choice (compress, recover, evaluate) with the settings of the plan's "
        "records study, and compare the measured value with the prediction (needs --out)",
    ),
    out: Path = typer.Option(None, "--out", help="with --verify: the verification study folder"),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="with --verify: local datasets (default: $COMPLAW_DATA_DIR)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print only JSON (all choices)"),
) -> None:
    """Rank feasible (model, r, D) choices for a target under a budget (the paper's RQ4)."""
    from complaw.experiment.records import load_law_table
    from complaw.laws import load_plan, plan

    if verify and out is None:
        raise LawError("--verify needs --out DIR: the folder of the verification study")
    the_spec = load_plan(spec)
    result = plan(the_spec, load_law_table(the_spec.records) if the_spec.records else None,
                  load_law_table(the_spec.prior.study) if the_spec.prior else None)
    checked = None
    if verify:
        from complaw.progress import quiet_libraries
        from complaw.study.verify import verify_plan

        quiet_libraries()
        checked = verify_plan(the_spec, result, out, data_dir=data_dir, progress=not as_json)
    if as_json:
        payload = result.to_dict()
        if checked is not None:
            payload["verify"] = checked.to_dict()
        _emit_json(payload)
        return
    table = Table(
        title=f"plan: {result.target} (objective: {result.objective})",
        caption="L predicted at D = the RFT budget, with its prediction interval (PI); D needed "
        "= least RFT meeting the target; held-out: the form's MAPE on the plan's split",
    )
    table.add_column("#", justify="right")
    table.add_column("model", no_wrap=True)
    for col in ("form", "r", "params", "speedup", "D needed", "D", "L0", "L",
                f"{result.level:.0%} PI", "held-out"):
        table.add_column(col, justify="left" if col == "form" else "right")
    for i, c in enumerate(result.choices[:top], 1):
        pi = "-" if c.pi_low is None else f"[{c.pi_low:.4g}, {c.pi_high:.4g}]"
        table.add_row(
            str(i), c.model, c.form, f"{c.r:g}",
            "-" if c.params_after is None else _count(c.params_after),
            _fmt(c.speedup, 3), f"{c.D_needed:g}", f"{c.D:g}", f"{c.L0:.4g}", f"{c.L:.4g}", pi,
            _heldout_cell(c.heldout),
        )
    console.print(table)
    if len(result.choices) > top:
        console.print(f"... {len(result.choices) - top} more feasible choices (--top, --json)")
    if not result.choices:
        console.print("[bold]no feasible choice[/]")
    for model, why in result.infeasible.items():
        console.print(f"[yellow]{model}[/] infeasible: {why}", highlight=False)
    for model, why in result.doubts.items():
        console.print(f"[yellow]{model}[/] {why}", highlight=False)
    if checked is not None:
        _print_verification(checked)


def _print_verification(v: Verification) -> None:
    interval = v.interval
    table = Table(title=f"verified: {v.choice.model} {v.method} r = {v.choice.r:g}, "
                        f"D = {v.D:g}, {v.dataset}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("predicted", f"{v.predicted:.4g}" + (
        "" if interval is None else f" [{interval[0]:.4g}, {interval[1]:.4g}] "
        f"({v.level:.0%} PI)"))
    table.add_row("measured", f"{v.measured:.4g} (L0 {v.L0:.4g})")
    table.add_row("error", f"{v.error_pct:.1f}%")
    table.add_row("target", f"{v.target:.4g}: {'met' if v.target_met else 'missed'}")
    table.add_row("in interval", {None: "-", True: "yes", False: "no"}[v.in_interval])
    table.add_row("record", f"{v.study}/verify.json")
    console.print(table)


@app.command("laws")
def laws_command(
    contains: str = typer.Option(None, "--contains", help="only names containing this text"),
    as_json: bool = typer.Option(False, "--json", help="print only JSON"),
) -> None:
    """List the paper's published laws (Tables 1, 2, 3, 4, 6 and Figure 6)."""
    from complaw.laws import published_laws

    laws = [w for w in published_laws() if not contains or contains in w.name]
    if as_json:
        _emit_json([w.to_dict() for w in laws])
        return
    table = Table(
        title="published compression laws",
        caption="no intercept; adj. R² and F as printed in the paper",
    )
    table.add_column("name", overflow="fold")
    for col in ("from", "metric", "law", "adj. R²", "F"):
        left = col in ("from", "metric", "law")
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    for w in laws:
        where = w.source.split(":")[0].replace("Table ", "T").replace("Figure ", "Fig")
        table.add_row(w.name, where, w.metric, w.formula(), _fmt(w.stats.get("adj_r2")),
                      _fmt(w.stats.get("f"), 6))
    console.print(table)


@app.command("forms")
def forms_command(as_json: bool = typer.Option(False, "--json", help="print only JSON")) -> None:
    """List the registered law forms and metrics: what each form models, and each metric's
    default forms, alone and pooled (plugins that register more appear here too)."""
    from complaw.laws.forms import FORMS, default_form
    from complaw.laws.metrics import METRICS

    forms = [{"form": name, "metrics": f.modelled(), "feasible": f.feasible,
              "scale": f.scale.name, "pooled_share": list(f.share), "law": f.equation}
             for name, f in FORMS.items()]
    metrics = [{"metric": name, "stage": m.stage, "family": m.family, "default_form": m.form,
                "pooled_form": default_form(name, pooled=True).name, "reference_form": m.reference,
                "higher_is_better": m.higher_is_better, "unit": m.unit}
               for name, m in METRICS.items()]
    if as_json:
        _emit_json({"forms": forms, "metrics": metrics})
        return
    for title, rows in (("law forms", forms), ("metrics", metrics)):
        table = Table(title=title)
        for col in rows[0]:
            table.add_column(col.replace("_", " "), overflow="fold")
        for row in rows:
            table.add_row(*(", ".join(v) if isinstance(v, list) else
                            "" if v is None else str(v) for v in row.values()))
        console.print(table)
