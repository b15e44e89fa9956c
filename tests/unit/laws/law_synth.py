"""Synthetic law tables drawn from known laws over a paper-like grid (test helper).

Kept out of a conftest.py on purpose: a second `conftest` module could shadow the one other
test folders import.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

L0_ACC = np.linspace(0.35, 0.70, 8)  # 8 base accuracies (one per model)
RATIOS = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
DSIZES = np.array([0.0, 1000.0, 4000.0, 25000.0])
TRUE_ACC = {"alpha": 0.98, "beta": -1.18, "gamma": -0.14}
TRUE_LOSS = {"alpha": 0.63, "beta": 1.72, "gamma": 1.16}


def grid(L0s=L0_ACC, ratios=RATIOS, dsizes=DSIZES) -> pd.DataFrame:
    """The full grid: 8 L0 x 5 ratios x 4 D values (160 rows), one model per L0."""
    L0, r, D = (a.ravel() for a in np.meshgrid(L0s, ratios, dsizes, indexing="ij"))
    model = np.repeat([f"m{i}" for i in range(len(L0s))], len(ratios) * len(dsizes))
    return pd.DataFrame({"model": model, "L0": L0, "r": r, "D": D})


def make_table(
    coefs: dict[str, float],
    metric: str = "accuracy",
    noise: float = 0.03,
    seed: int = 0,
    L0s=None,
    **columns,
) -> pd.DataFrame:
    """Rows from L = L0^a (1+r)^b (1+1/(D+1))^g times log-normal noise."""
    rng = np.random.default_rng(seed)
    if L0s is None:
        L0s = L0_ACC if metric == "accuracy" else np.linspace(1.8, 3.2, 8)
    df = grid(L0s)
    log_l = (
        coefs.get("const", 0.0)
        + coefs.get("alpha", 0.0) * np.log(df["L0"])
        + coefs.get("beta", 0.0) * np.log1p(df["r"])
        + coefs.get("gamma", 0.0) * np.log1p(1.0 / (df["D"] + 1.0))
    )
    df["L"] = np.exp(log_l + rng.normal(0.0, noise, len(df)))
    df["method"] = "prunenet"
    df["calibration"] = columns.pop("calibration", "none")
    df["dataset"] = columns.pop("dataset", "wikitext2")
    df["metric"] = metric
    for k, v in columns.items():
        df[k] = v
    return df


def acc_df() -> pd.DataFrame:
    """An accuracy table from the worked-example law (160 rows)."""
    return make_table(TRUE_ACC, "accuracy", seed=1)


def loss_df() -> pd.DataFrame:
    """A loss table from Table 1's intrinsic law (160 rows)."""
    return make_table(TRUE_LOSS, "loss", seed=2)
