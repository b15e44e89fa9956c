"""Commands on compression laws: fit, predict, critical, plan, laws (no torch).

Each command parses its flags, calls one function of `complaw.laws` and prints a rich table,
or with ``--json`` only JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from complaw.cli.app import app, console
from complaw.errors import LawError


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


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _load_records(records: Path):
    """A validated law table from a CSV/Parquet file or a directory of experiment records."""
    from complaw.laws import read_table, validate

    if records.is_dir():
        try:
            from complaw.study.records import law_table
        except ImportError as exc:
            raise LawError(
                f"cannot read the record directory {str(records)!r}: the record loader is not "
                f"available ({exc}); export a CSV and pass that instead"
            ) from None
        table = law_table(records)
        if len(table) == 0:
            unmatched = table.attrs.get("unmatched", 0)
            raise LawError(
                f"no law rows in {str(records)!r} ({unmatched} metric(s) without a matching "
                "uncompressed record); run the base models too, or check the directory"
            )
        return validate(table)
    if not records.exists():
        raise LawError(
            f"records {str(records)!r} do not exist; give a CSV/Parquet file or a study directory"
        )
    return read_table(records)


@app.command("fit")
def fit_command(
    records: Path = typer.Argument(..., help="CSV/Parquet law table, or a study directory"),
    form: str = typer.Option("eq1", "--form", help="eq1 | eq2 | eq3 | runtime | additive"),
    by: list[str] = typer.Option(
        None,
        "--by",
        help="group columns, repeatable or comma-separated (model, calibration, "
        "dataset, ...); metric is always a group",
    ),
    intercept: bool = typer.Option(
        None,
        "--intercept/--no-intercept",
        help="add a free constant (default: none for eq1-3, as in the paper; yes for runtime)",
    ),
    bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="bootstrap resamples (0: off)"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    bootstrap_by: str = typer.Option(
        None, "--bootstrap-by", help="resample whole groups of this column (default: rows)"
    ),
    logo: str = typer.Option(
        "auto", "--logo", help="leave-one-group-out column; 'auto' = model, 'none' = off"
    ),
    compare: bool = typer.Option(
        False, "--compare", help="also compare eq1, eq2, eq3 and additive by AIC/BIC"
    ),
    level: float = typer.Option(0.95, "--level", min=0.5, max=0.999, help="CI level"),
    as_json: bool = typer.Option(False, "--json", help="print only JSON"),
) -> None:
    """Fit a compression law on records (Tables 1-4, 6 of the paper: --by model/calibration/...)."""
    from complaw.laws import compare as compare_forms
    from complaw.laws import fit

    df = _load_records(records)
    group_by = _split(by)
    held = None if logo.lower() == "none" else logo
    fits = fit(
        df,
        form,
        group_by,
        intercept=intercept,
        level=level,
        bootstrap=bootstrap,
        seed=seed,
        bootstrap_by=bootstrap_by,
        logo=held,
    )
    comparison = compare_forms(df, by=group_by, logo=held) if compare else None
    if as_json:
        payload = fits.to_dict()
        if comparison is not None:
            payload["compare"] = json.loads(comparison.to_json(orient="records"))
        _emit_json(payload)
        return
    first = fits[0]
    table = Table(
        title=f"{fits.form}: {first.law().form_obj.equation}",
        caption=f"intercept: {'yes' if first.intercept else 'none (as in the paper)'}",
    )
    for col in ("group", "coef", "estimate", "stderr", f"{level:.0%} CI", "bootstrap CI"):
        table.add_column(col, justify="left" if col in ("group", "coef") else "right")
    for f in fits:
        for i, (name, c) in enumerate(f.coefficients.items()):
            boot = "-" if c.boot_low is None else f"[{c.boot_low:.4g}, {c.boot_high:.4g}]"
            table.add_row(
                f.label if i == 0 else "",
                name,
                f"{c.estimate:.4g}",
                f"{c.stderr:.2g}",
                f"[{c.ci_low:.4g}, {c.ci_high:.4g}]",
                boot,
                end_section=i == len(f.coefficients) - 1,
            )
    console.print(table)
    stats = Table(
        title="goodness of fit",
        caption="* = the adj. R² statsmodels reports (uncentered when the design has no "
        "constant column); AIC on the scale of L; MAPE: leave-one-group-out",
    )
    for col in (
        "group",
        "n",
        "adj. R² uncentered",
        "adj. R² centered",
        "F",
        "p(F)",
        "AIC",
        "held-out MAPE",
    ):
        stats.add_column(col, justify="left" if col == "group" else "right")
    for f in fits:
        star = {f.r2_kind: "*"}
        stats.add_row(
            f.label,
            str(f.n),
            _fmt(f.adj_r2_uncentered) + star.get("uncentered", ""),
            _fmt(f.adj_r2_centered) + star.get("centered", ""),
            _fmt(f.f, 5),
            _fmt(f.f_pvalue, 2),
            _fmt(f.aic, 5),
            "-"
            if not f.logo or f.logo["mape"] is None
            else f"{f.logo['mape']:.2%} ({f.logo['by']})",
        )
    table = stats
    console.print(table)
    if comparison is not None:
        ctable = Table(title="form comparison (AIC/BIC on the scale of L; Δ = 0 is best)")
        keys = [c for c in comparison.columns if c in fits.by]
        for col in [*keys, "form", "k", "adj. R²", "AIC", "ΔAIC", "ΔBIC", "held-out MAPE"]:
            ctable.add_column(col)
        for _, row in comparison.iterrows():
            mape = row["logo_mape"]
            ctable.add_row(
                *[str(row[k]) for k in keys],
                row["form"],
                str(row["k"]),
                f"{_fmt(row['adj_r2'])} {row['r2_kind']}",
                _fmt(row["aic"], 6),
                _fmt(row["delta_aic"], 4),
                _fmt(row["delta_bic"], 4),
                "-" if mape is None or mape != mape else f"{mape:.2%}",
            )
        console.print(ctable)


@app.command("predict")
def predict_command(
    law: str = typer.Option(..., "--law", help="published name (paper:...) or FILE.json[#NAME]"),
    L0: float = typer.Option(..., "--L0", help="the uncompressed model's value of the metric"),
    r: list[float] = typer.Option(..., "--r", help="compression ratio(s) in [0, 1), repeatable"),
    D: list[float] = typer.Option(None, "--D", help="RFT size(s), repeatable (default 0)"),
    level: float = typer.Option(0.95, "--level", min=0.5, max=0.999, help="CI level"),
    as_json: bool = typer.Option(False, "--json", help="print only JSON"),
) -> None:
    """Predict L of a compressed model from a law, for every (r, D) given."""
    import numpy as np

    from complaw.laws import get_law

    the_law = get_law(law)
    Ds = list(D) if D else [0.0]
    grid_r = np.repeat(np.asarray(r, dtype=float), len(Ds))
    grid_d = np.tile(np.asarray(Ds, dtype=float), len(r))
    pred = the_law.predict(L0, grid_r, grid_d, level=level)
    rows = []
    for i in range(len(grid_r)):
        rows.append(
            {
                "r": float(grid_r[i]),
                "D": float(grid_d[i]),
                "L": float(pred.L[i]),
                "ci": None if pred.low is None else [float(pred.low[i]), float(pred.high[i])],
            }
        )
    if as_json:
        _emit_json(
            {
                "law": the_law.name,
                "formula": the_law.formula(),
                "metric": the_law.metric,
                "L0": L0,
                "level": level,
                "predictions": rows,
            }
        )
        return
    table = Table(
        title=f"{the_law.name}: {the_law.formula()}",
        caption=f"{the_law.metric}, L0 = {L0:g}; {the_law.source}"
        + ("" if pred.low is not None else "; no CI: published laws carry no covariance"),
    )
    for col in ("r", "D", "L", f"{level:.0%} CI", "L / L0"):
        table.add_column(col, justify="right")
    for row in rows:
        ci = "-" if row["ci"] is None else f"[{row['ci'][0]:.4g}, {row['ci'][1]:.4g}]"
        table.add_row(
            f"{row['r']:g}", f"{row['D']:g}", f"{row['L']:.4g}", ci, f"{row['L'] / L0:.3f}"
        )
    console.print(table)


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
    as_json: bool = typer.Option(False, "--json", help="print only JSON (all choices)"),
) -> None:
    """Rank feasible (model, r, D) choices for a target under a budget (the paper's RQ4)."""
    from complaw.laws import load_plan, plan

    result = plan(load_plan(spec))
    if as_json:
        _emit_json(result.to_dict())
        return
    table = Table(
        title=f"plan: {result.target} (objective: {result.objective})",
        caption="L predicted at D = the RFT budget; D needed = least RFT meeting the target",
    )
    table.add_column("#", justify="right")
    table.add_column("model", no_wrap=True)
    for col in ("r", "params", "speedup", "D needed", "D", "L", f"{result.level:.0%} CI"):
        table.add_column(col, justify="right")
    for i, c in enumerate(result.choices[:top], 1):
        ci = "-" if c.L_low is None else f"[{c.L_low:.4g}, {c.L_high:.4g}]"
        table.add_row(
            str(i),
            c.model,
            f"{c.r:g}",
            _count(c.params_after),
            _fmt(c.speedup, 3),
            f"{c.D_needed:g}",
            f"{c.D:g}",
            f"{c.L:.4g}",
            ci,
        )
    console.print(table)
    if len(result.choices) > top:
        console.print(f"... {len(result.choices) - top} more feasible choices (--top, --json)")
    if not result.choices:
        console.print("[bold]no feasible choice[/]")
    for model, why in result.infeasible.items():
        console.print(f"[yellow]{model}[/] infeasible: {why}", highlight=False)


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
    for col in ("from", "metric", "alpha", "beta", "gamma", "adj. R²", "F"):
        left = col in ("from", "metric")
        table.add_column(
            col, justify="left" if left else "right", no_wrap=True, min_width=None if left else 5
        )
    for w in laws:
        c = w.coefficients
        where = w.source.split(":")[0].replace("Table ", "T").replace("Figure ", "Fig")
        table.add_row(
            w.name,
            where,
            w.metric,
            *[_fmt(c.get(k)) for k in ("alpha", "beta", "gamma")],
            _fmt(w.stats.get("adj_r2")),
            _fmt(w.stats.get("f"), 6),
        )
    console.print(table)
