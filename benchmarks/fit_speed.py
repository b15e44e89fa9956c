"""Benchmark: fit Eq. 1 on 10,000 rows with 1,000 bootstrap resamples (target: < 10 s).

Run: ``.venv/bin/python benchmarks/fit_speed.py [--rows N] [--resamples B] [--repeat K]``.
Prints a table of wall-clock times (best and median of K runs) for the whole `fit` call and for
its parts (statsmodels OLS + statistics, bootstrap, leave-one-model-out).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from complaw.laws import fit
from complaw.laws.fit import bootstrap_coefficients, inputs_of
from complaw.laws.forms import get_form

TARGET_S = 10.0


def synthetic_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """A law table drawn from a known Eq. 1 law with log-normal noise (40 models)."""
    rng = np.random.default_rng(seed)
    L0 = rng.uniform(0.3, 0.8, 40)
    model = rng.integers(0, 40, rows)
    r = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], rows)
    D = rng.choice([0.0, 1000.0, 4000.0, 25000.0], rows)
    logL = (
        0.98 * np.log(L0[model])
        - 1.18 * np.log1p(r)
        - 0.14 * np.log1p(1 / (D + 1))
        + rng.normal(0, 0.03, rows)
    )
    return pd.DataFrame(
        {
            "model": [f"m{i}" for i in model],
            "method": "prunenet",
            "calibration": "none",
            "dataset": "mix",
            "metric": "accuracy",
            "L": np.exp(logL),
            "L0": L0[model],
            "r": r,
            "D": D,
        }
    )


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
    args = parser.parse_args()

    df = synthetic_table(args.rows)
    fit(df.head(50), "eq1", logo=None)  # warm up imports (statsmodels) outside the timings
    form = get_form("eq1")
    X = form.design(inputs_of(df))
    y = form.response(df["L"].to_numpy(), inputs_of(df))

    cases = {
        "fit eq1, no bootstrap, no held-out": lambda: fit(df, "eq1", logo=None),
        f"bootstrap only ({args.resamples} resamples)": lambda: bootstrap_coefficients(
            X, y, args.resamples, seed=0
        ),
        f"fit eq1 + {args.resamples} bootstrap (target < {TARGET_S:g} s)": lambda: fit(
            df, "eq1", bootstrap=args.resamples, seed=0, logo=None
        ),
        f"fit eq1 + {args.resamples} bootstrap + leave-one-model-out": lambda: fit(
            df, "eq1", bootstrap=args.resamples, seed=0, logo="model"
        ),
    }
    table = Table(
        title=f"complaw.laws fit speed: {args.rows:,} rows, best/median of {args.repeat} runs"
    )
    for col in ("case", "best s", "median s"):
        table.add_column(col, justify="left" if col == "case" else "right")
    verdict = ""
    for name, fn in cases.items():
        times = timed(fn, args.repeat)
        table.add_row(name, f"{min(times):.3f}", f"{np.median(times):.3f}")
        if "target" in name:
            verdict = "PASS" if np.median(times) < TARGET_S else "FAIL"
    Console().print(table)
    Console().print(f"target (< {TARGET_S:g} s for Eq. 1 + bootstrap): {verdict}")


if __name__ == "__main__":
    main()
