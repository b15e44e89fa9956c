"""Validation of law tables: each bad input class raises its own error."""

from __future__ import annotations

import pandas as pd
import pytest
from law_synth import TRUE_ACC, make_table

from complaw.errors import ComplawError, LawError
from complaw.laws import fit, read_table, validate
from complaw.laws import table as T


@pytest.fixture
def good() -> pd.DataFrame:
    return make_table(TRUE_ACC, seed=0)


def _set(df: pd.DataFrame, column: str, value) -> pd.DataFrame:
    df = df.copy()
    df[column] = df[column].astype(object)
    df.loc[df.index[3], column] = value
    return df


BAD = [
    ("missing", lambda df: df.drop(columns=["L0", "D"]), T.MissingColumnsError, "L0"),
    ("text", lambda df: _set(df, "r", "thirty"), T.NonNumericError, "thirty"),
    ("nan", lambda df: _set(df, "L", float("nan")), T.NonNumericError, "nan"),
    ("L<=0", lambda df: _set(df, "L", 0.0), T.NonPositiveValueError, "L must be > 0"),
    ("L0<0", lambda df: _set(df, "L0", -0.5), T.NonPositiveValueError, "-0.5"),
    ("r>=1", lambda df: _set(df, "r", 30.0), T.RatioOutOfRangeError, "30.0"),
    ("r<0", lambda df: _set(df, "r", -0.1), T.RatioOutOfRangeError, "-0.1"),
    ("D<0", lambda df: _set(df, "D", -5.0), T.NegativeDataSizeError, "-5.0"),
    ("metric", lambda df: _set(df, "metric", "perplexity"), T.UnknownMetricError, "perplexity"),
    ("percent", lambda df: _set(df, "L", 55.0), T.AccuracyScaleError, "55.0"),
]


@pytest.mark.parametrize("case,mutate,error,needle", BAD, ids=[b[0] for b in BAD])
def test_each_bad_input_has_its_own_error(good, case, mutate, error, needle):
    with pytest.raises(error) as info:
        validate(mutate(good))
    assert isinstance(info.value, LawError) and isinstance(info.value, ComplawError)
    assert needle in str(info.value)
    # the error is the most specific one: no other bad-input class matches
    others = {b[2] for b in BAD} - {error}
    assert not any(type(info.value) is o for o in others)


def test_error_classes_are_distinct():
    classes = {b[2] for b in BAD} | {T.TooFewRowsError}
    assert len(classes) == 8
    assert all(issubclass(c, LawError) for c in classes)


def test_too_few_rows(good):
    with pytest.raises(T.TooFewRowsError, match="3 row"):
        fit(good.head(3), "eq1")
    # 4 rows for 3 coefficients is the minimum that fits
    assert fit(good.iloc[[0, 5, 10, 27]], "eq1").only().n == 4


def test_too_few_rows_in_one_group(good):
    df = pd.concat([good, good.head(2).assign(model="tiny")])
    with pytest.raises(T.TooFewRowsError, match="model=tiny"):
        fit(df, "eq1", by="model")


def test_validate_cleans_types_and_keeps_extra_columns(good):
    df = good.assign(r=good["r"].astype(str), metric="Accuracy", extra=1)
    out = validate(df)
    assert out["r"].dtype == float
    assert set(out["metric"]) == {"accuracy"}
    assert "extra" in out.columns
    assert validate(good) is not good  # a copy


def test_not_a_dataframe():
    with pytest.raises(LawError, match="DataFrame"):
        validate([1, 2, 3])  # type: ignore[arg-type]


def test_read_csv_and_parquet(tmp_path, good):
    good.to_csv(tmp_path / "t.csv", index=False)
    good.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        df = read_table(tmp_path / name)
        assert len(df) == len(good)
        assert list(df.columns[:9]) != []
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(LawError, match="suffix"):
        read_table(tmp_path / "t.txt")
    with pytest.raises(LawError, match="not a file"):
        read_table(tmp_path / "missing.csv")


def test_merge_counts_each_measurement_once(good):
    """By record id when every row has one, else by condition and seed."""
    ided = good.assign(experiment=[f"e{i}" for i in range(len(good))])
    a, b = ided.iloc[:40], ided.iloc[30:]
    assert T.merge([a, b]).equals(validate(ided)) and T.merge([a]) is a
    seeded = good.assign(seed=0)
    other = seeded.iloc[:10].assign(seed=1, L=seeded["L"].iloc[:10] * 1.1)
    merged = T.merge([seeded, seeded.iloc[:20], other])
    assert len(merged) == len(good) + 10
    assert merged.groupby("seed").size().to_dict() == {0: len(good), 1: 10}
