"""The paper's published laws, shipped as data."""

from __future__ import annotations

import json

import pytest

from complaw.errors import LawError
from complaw.laws import get_law, published_law, published_laws
from complaw.laws.theory import check_feasible

ISSUE_NAMES = [
    "paper:llama-3-8b:extrinsic",
    "paper:qwen-2.5-7b:intrinsic",
    "paper:all:intrinsic",
    "paper:calibrated:extrinsic",
    "paper:runtime:qwen-2.5-14b",
    "paper:wikitext2:intrinsic",
]


def test_named_laws_exist():
    for name in ISSUE_NAMES:
        assert published_law(name).name == name


def test_tables_are_complete():
    by_table: dict[str, int] = {}
    for law in published_laws():
        table = law.source.split(":")[0]
        by_table[table] = by_table.get(table, 0) + 1
    assert by_table == {
        "Table 1": 6,
        "Table 2": 16,
        "Table 3": 4,
        "Table 4": 8,
        "Figure 6": 1,
        "Table 6": 9,
    }
    names = [law.name for law in published_laws()]
    assert len(names) == len(set(names))


def test_printed_numbers():
    """Spot checks against the paper as printed (Tables 1, 2, 3, 4, 6)."""
    t1 = published_law("paper:all:intrinsic")
    assert t1.coefficients == {"alpha": 0.63, "beta": 1.72, "gamma": 1.16}
    assert t1.stats["adj_r2"] == 0.96 and t1.stats["f"] == 5114
    ext = published_law("paper:all:extrinsic")
    assert ext.coefficients["beta"] == -1.03 and ext.stats["f"] == 22420
    assert published_law("paper:all:intrinsic:eq3").form == "eq3"
    t2 = published_law("paper:llama-3-8b:extrinsic")
    assert t2.coefficients == {"alpha": 0.98, "beta": -1.18, "gamma": -0.14}
    assert t2.stats["adj_r2"] == 0.92
    assert published_law("paper:llama-3-8b:intrinsic").coefficients["beta"] == 2.36
    assert published_law("paper:calibrated:extrinsic").coefficients["alpha"] == 1.25
    rt = published_law("paper:runtime:qwen-2.5-14b")
    assert rt.form == "runtime" and rt.coefficients == {"beta": -1.62}
    assert published_law("paper:wikitext2:intrinsic").stats["f"] == 2386
    assert published_law("paper:alpaca:intrinsic:llama").coefficients["alpha"] == -0.63


def test_published_laws_meet_the_feasibility_conditions():
    for law in published_laws():
        if law.metric in ("loss", "accuracy"):
            check_feasible(law)
        assert not law.has_intercept  # the paper fits without intercept


def test_runtime_law_uses_s0_as_c():
    law = get_law("paper:runtime:llama-3-8b")
    pred = law.predict(100.0, 0.9).L[0]
    assert pred == pytest.approx(100.0 * 1.9**-1.87)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(LawError, match="paper:llama-3-8b"):
        get_law("paper:llama-3-8b:extrinsc")
    with pytest.raises(LawError, match="complaw laws"):
        get_law("nonsense")


def test_get_law_reads_fit_json(tmp_path, acc_table):
    from complaw.laws import fit

    fits = fit(acc_table, "eq1", by="calibration")
    path = tmp_path / "fits.json"
    path.write_text(json.dumps(fits.to_dict()))
    law = get_law(str(path))
    assert law.coefficients["beta"] == pytest.approx(fits.only().estimates()["beta"])
    assert law.cov is not None
    pred = law.predict(0.5, 0.3, 0)
    assert pred.low[0] < pred.L[0] < pred.high[0]
    assert get_law(f"{path}#{law.name}").name == law.name
    with pytest.raises(LawError, match="no law"):
        get_law(f"{path}#nope")
