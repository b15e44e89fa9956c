"""Benchmark: how fast laws are fitted, bootstrapped and compared on held-out error.

Targets (2 CPU cores): Eq. 1 on 10,000 rows with 1,000 bootstrap resamples < 10 s; a nonlinear
(feasible) form on 10,000 rows with 1,000 bootstrap resamples < 30 s; ``--compare --holdout
r:0.5`` on a study's records (default: the default study's, committed under tests/unit/data) < 10 s.

Run: ``.venv/bin/python benchmarks/fit_speed.py [--rows N] [--resamples B] [--repeat K]
[--forms onset,degradation] [--study DIR]``. Prints a table of wall-clock times (best and median
of K runs) and PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from complaw.experiment.records import load_law_table
from complaw.laws import compare, fit
from complaw.laws.fit import bootstrap_coefficients, inputs_of, resample_weights
from complaw.laws.forms import get_form

DEFAULT_STUDY = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data" / "quickstart"
TRUTH = {"A": 16.0, "k": 3.0, "h": 0.25, "Dl": 600.0, "c": 0.5}


def synthetic_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """A loss table drawn from a known feasible law (the onset form's truth for the nonlinear
    forms; Eq. 1 is fitted on the same rows) with log-normal noise, 40 models."""
    rng = np.random.default_rng(seed)
    L0 = rng.uniform(2.0, 4.0, 40)
    model = rng.integers(0, 40, rows)
    data = {"L0": L0[model], "r": rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], rows),
            "D": rng.choice([0.0, 256.0, 1024.0, 4096.0], rows)}
    L = get_form("onset").predict(TRUTH, data) * np.exp(rng.normal(0, 0.03, rows))
    return pd.DataFrame({"model": [f"m{i}" for i in model], "method": "prunenet",
                         "calibration": "none", "dataset": "mix", "metric": "loss", "L": L,
                         **data})


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forms", default="onset,degradation",
                        help="nonlinear forms to time (comma-separated)")
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY,
                        help="study folder (or CSV) for the --compare case")
    args = parser.parse_args()

    df = synthetic_table(args.rows)
    fit(df.head(50), "eq1")  # warm up imports (scipy) outside the timings
    form = get_form("eq1")
    X = form.design(inputs_of(df))
    y = form.response(df["L"].to_numpy(), inputs_of(df))
    B = args.resamples
    cases = {
        ("fit eq1, no bootstrap", None): lambda: fit(df, "eq1"),
        (f"bootstrap only ({B} resamples)", None): lambda: bootstrap_coefficients(
            X, y, resample_weights(len(y), B)),
        (f"fit eq1 + {B} bootstrap", 10.0): lambda: fit(df, "eq1", bootstrap=B),
        ("fit eq1 + held-out (r:0.5, D, model)", None): lambda: fit(
            df, "eq1", holdout=["r:0.5", "D", "model"]),
    }
    for name in args.forms.split(","):
        cases[(f"fit {name}, no bootstrap", None)] = lambda n=name: fit(df, n)
        cases[(f"fit {name} + {B} bootstrap", 30.0)] = lambda n=name: fit(df, n, bootstrap=B)
    if args.study.exists():
        rows = load_law_table(args.study)
        cases[(f"compare every form, holdout r:0.5, by method ({len(rows)} rows of "
               f"{args.study.name})", 10.0)] = lambda: compare(rows, None, ["method"])
    table = Table(title=f"complaw.laws fit speed: {args.rows:,} rows, best/median of "
                        f"{args.repeat} runs")
    for col in ("case", "best s", "median s", "target"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for (name, target), fn in cases.items():
        times = timed(fn, args.repeat)
        verdict = "" if target is None else (
            f"< {target:g} s: {'PASS' if np.median(times) < target else 'FAIL'}")
        table.add_row(name, f"{min(times):.3f}", f"{np.median(times):.3f}", verdict)
    Console().print(table)


if __name__ == "__main__":
    main()
