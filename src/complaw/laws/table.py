"""The law table: the one DataFrame shape every law function reads, and its validation.

One row is one measured metric of one compressed model; its columns (`COLUMNS`, and the
`OPTIONAL_COLUMNS` older tables lack) are described in docs/laws.md, "The input table".
`complaw.experiment.records.law_table` builds the table from experiment records with exactly
them (`load_law_table` reads a file or a study folder).

Each kind of bad input raises its own `LawError` subclass, whose message names the bad value
and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from complaw.errors import LawError
from complaw.laws.metrics import METRICS, get_metric

COLUMNS: tuple[str, ...] = (
    "model",
    "method",
    "calibration",
    "dataset",
    "metric",
    "L",
    "L0",
    "r",
    "D",
)
TEXT_COLUMNS: tuple[str, ...] = ("model", "method", "calibration", "dataset", "metric")
NUMERIC_COLUMNS: tuple[str, ...] = ("L", "L0", "r", "D")
SIZE = "N0"
"""The optional column of a model's size: its base model's non-embedding parameters (what a
pooled law's size trend reads, `complaw.laws.pooling`)."""
OPTIONAL_COLUMNS: tuple[str, ...] = ("L_se", "chance", "T0", SIZE, "experiment")
OPTIONAL_NUMERIC: tuple[str, ...] = ("L_se", "chance", "T0", SIZE)


class MissingColumnsError(LawError):
    """The table lacks one or more of the required columns."""


class NonNumericError(LawError):
    """A numeric column holds text, or a missing value (NaN/inf)."""


class NonPositiveValueError(LawError):
    """L or L0 is zero or negative: the laws are fitted on their logarithms."""


class RatioOutOfRangeError(LawError):
    """A compression ratio r lies outside [0, 1)."""


class NegativeDataSizeError(LawError):
    """An RFT size D is negative."""


class UnknownMetricError(LawError):
    """The metric column holds a value other than a registered metric's name."""


class AccuracyScaleError(LawError):
    """A fraction (an accuracy) above 1: fractions, not percentages."""


class TooFewRowsError(LawError):
    """A fit has no more rows than coefficients, so its statistics are undefined."""


def _show(values: Sequence[object], limit: int = 3) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _where(df: pd.DataFrame, mask: np.ndarray | pd.Series, column: str) -> str:
    rows = df.index[np.asarray(mask)]
    values = df.loc[rows, column].tolist()
    return f"{int(np.sum(mask))} row(s) (index {_show(list(rows))}) with {column} = {_show(values)}"


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check a law table and return a clean copy (numeric columns as float, text as str).

    Raises one `LawError` subclass per kind of problem: `MissingColumnsError`,
    `NonNumericError`, `NonPositiveValueError` (L or L0 <= 0), `RatioOutOfRangeError`
    (r outside [0, 1)), `NegativeDataSizeError` (D < 0), `UnknownMetricError`,
    `AccuracyScaleError` (above its metric's scale: an accuracy > 1). Extra columns are kept;
    the optional numeric ones (`OPTIONAL_NUMERIC`) as floats, NaN where missing.
    """
    if not isinstance(df, pd.DataFrame):
        raise LawError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"law table is missing column(s) {', '.join(missing)}; it needs exactly "
            f"{', '.join(COLUMNS)} (found: {', '.join(map(str, df.columns)) or 'none'})"
        )
    out = df.copy()
    for column in TEXT_COLUMNS:
        out[column] = out[column].astype(str).str.strip()
    for column in NUMERIC_COLUMNS:
        converted = pd.to_numeric(out[column], errors="coerce")
        bad = ~np.isfinite(converted.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            raise NonNumericError(
                f"column {column} must hold finite numbers; {_where(out, bad, column)}; "
                "fix or drop those rows"
            )
        out[column] = converted.astype(float)
    for column in OPTIONAL_NUMERIC:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    out["metric"] = out["metric"].str.lower()
    unknown = ~out["metric"].isin(list(METRICS))
    if unknown.any():
        raise UnknownMetricError(
            f"metric must be one of {', '.join(METRICS)}; {_where(out, unknown, 'metric')}"
        )
    for column in ("L", "L0"):
        bad = (out[column] <= 0).to_numpy()
        if bad.any():
            raise NonPositiveValueError(
                f"{column} must be > 0 because laws are fitted on log({column}); "
                f"{_where(out, bad, column)}; drop those rows or fix the records"
            )
    bad = ((out["r"] < 0) | (out["r"] >= 1)).to_numpy()
    if bad.any():
        raise RatioOutOfRangeError(
            f"compression ratio r must be in [0, 1); {_where(out, bad, 'r')}; "
            "give r as a fraction (0.3, not 30)"
        )
    bad = (out["D"] < 0).to_numpy()
    if bad.any():
        raise NegativeDataSizeError(
            f"RFT size D must be >= 0 (0 = no recovery fine-tuning); {_where(out, bad, 'D')}"
        )
    upper = out["metric"].map(lambda m: get_metric(m).scale.upper).to_numpy(float)
    for column in ("L", "L0"):
        bad = (out[column] > upper).to_numpy()
        if bad.any():
            raise AccuracyScaleError(
                f"a fraction (accuracy) must be in (0, 1]; {_where(out, bad, column)}; "
                "divide percentages by 100"
            )
    return out


def check_enough_rows(n_rows: int, n_coefficients: int, what: str = "the fit") -> None:
    """Raise `TooFewRowsError` unless there are more rows than coefficients."""
    if n_rows <= n_coefficients:
        raise TooFewRowsError(
            f"{what} has {n_rows} row(s) for {n_coefficients} coefficient(s); it needs at least "
            f"{n_coefficients + 1} rows (use a coarser --by, or add experiments)"
        )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read and validate a law table from a ``.csv`` or ``.parquet`` file."""
    path = Path(path)
    if not path.is_file():
        raise LawError(f"law table {str(path)!r} is not a file; give a .csv or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            raise LawError(
                f"cannot read law table {str(path)!r}: unknown suffix {suffix!r}; "
                "use .csv or .parquet"
            )
    except (OSError, ValueError, ImportError) as exc:
        raise LawError(f"cannot read law table {str(path)!r}: {exc}") from exc
    return validate(df)



def merge(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several validated law tables as one, each measurement once: rows of one record id
    (``experiment``; ids are free of where and how a study ran) on the same dataset and metric,
    or, without ids, of one condition and seed, are one measurement held by two studies."""
    if len(tables) == 1:
        return tables[0]
    out = pd.concat(tables, ignore_index=True)
    ids = "experiment" in out.columns and bool(out["experiment"].notna().all())
    key = ["experiment", "dataset", "metric"] if ids else [*TEXT_COLUMNS, "r", "D"]
    key += ["seed"] if "seed" in out.columns and not ids else []
    return validate(out[~out[key].astype(str).duplicated()].reset_index(drop=True))
