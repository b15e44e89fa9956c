"""The planner: ranked feasible (model, r, D) choices and reasons for the rest."""

from __future__ import annotations

import pytest
import yaml

from complaw.errors import LawError
from complaw.laws import get_law, load_plan, parse_plan, plan

SPEC = {
    "target": {"metric": "accuracy", "retention": 0.8},
    "budget": {"max_params": 4.0e9, "rft_tokens": 25000, "min_speedup": 1.1},
    "candidates": [
        {"name": "llama-3-8b", "params": 8.0e9, "L0": {"accuracy": 0.62}},
        {"name": "llama-3.2-3b", "params": 3.2e9, "L0": {"accuracy": 0.55}},
        {"name": "qwen-2.5-0.5b", "params": 0.5e9, "L0": {"accuracy": 0.45}},
    ],
}


def test_choices_meet_target_and_budget():
    result = plan(parse_plan(SPEC))
    assert result.choices
    for c in result.choices:
        law = get_law(c.law)
        L0 = next(x["L0"]["accuracy"] for x in SPEC["candidates"] if x["name"] == c.model)
        assert c.params_after <= 4.0e9 and c.speedup >= 1.1
        assert c.D_needed <= 25000 and c.D == 25000
        assert law.predict(L0, c.r, c.D_needed).L[0] >= 0.8 * L0 - 1e-12
        assert c.L == pytest.approx(law.predict(L0, c.r, 25000).L[0])
    # ranked by best predicted accuracy
    Ls = [c.L for c in result.choices]
    assert Ls == sorted(Ls, reverse=True)


def test_infeasible_models_are_explained():
    result = plan(parse_plan(SPEC))
    why = result.infeasible["llama-3-8b"]
    assert "max_params" in why and "not reached" in why
    # the 8B model at r >= r_crit(0.8 relative to L0) is explained as unreachable
    assert "qwen-2.5-0.5b" in result.infeasible
    assert "speedup" in result.infeasible["qwen-2.5-0.5b"]


def test_objectives_and_absolute_target():
    spec = dict(SPEC, objective="smallest", budget={"rft_tokens": 1000})
    result = plan(parse_plan(spec))
    sizes = [c.params_after for c in result.choices]
    assert sizes == sorted(sizes)
    spec = dict(SPEC, target={"metric": "accuracy", "value": 0.5}, budget={"rft_tokens": 0})
    result = plan(parse_plan(spec))
    assert all(c.L >= 0.5 for c in result.choices)
    assert {c.D_needed for c in result.choices} == {0.0}


def test_loss_target_uses_intrinsic_laws():
    spec = {
        "target": {"metric": "loss", "retention": 1.5},
        "budget": {"rft_tokens": 4000},
        "candidates": [{"name": "qwen-2.5-7b", "params": 7.6e9, "L0": {"loss": 2.2}}],
    }
    result = plan(parse_plan(spec))
    assert result.choices and all(c.law == "paper:qwen-2.5-7b:intrinsic" for c in result.choices)
    assert all(c.L <= 1.5 * 2.2 for c in result.choices)


def test_bad_specs(tmp_path):
    with pytest.raises(LawError, match="exactly one"):
        parse_plan(dict(SPEC, target={"metric": "accuracy", "retention": 0.8, "value": 0.5}))
    bad = dict(SPEC, candidates=[{"name": "x", "params": 1e9, "L0": {"loss": 2.0}}])
    with pytest.raises(LawError, match="no L0 for metric 'accuracy'"):
        parse_plan(bad)
    with pytest.raises(LawError, match="ratios"):
        parse_plan(dict(SPEC, ratios=[0.5, 1.5]))
    with pytest.raises(LawError, match="budget.max_params"):
        parse_plan(dict(SPEC, budget={"max_params": -1}))
    wrong_law = dict(
        SPEC,
        candidates=[
            {"name": "x", "params": 1e9, "L0": {"accuracy": 0.5}, "law": "paper:all:intrinsic"}
        ],
    )
    with pytest.raises(LawError, match="loss law"):
        plan(parse_plan(wrong_law))
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    assert load_plan(path).candidates[0].name == "llama-3-8b"


def test_assured_plans_meet_the_target_with_the_interval(tmp_path, loss_table):
    """With `assured`, the worse end of the prediction interval meets the target at D_needed;
    without it only the point prediction does, so assurance never allows a larger ratio."""
    import json

    from complaw.laws import fit

    path = tmp_path / "laws.json"
    path.write_text(json.dumps(fit(loss_table, "eq1").to_dict()))
    spec = {
        "target": {"metric": "loss", "value": 4.0},
        "budget": {"rft_tokens": 1000},
        "objective": "smallest",
        "candidates": [{"name": "m", "params": 1e9, "L0": {"loss": 2.5},
                        "law": f"{path}#fit:eq1:loss"}],
    }
    plain = plan(parse_plan(spec))
    sure = plan(parse_plan(dict(spec, assured=True)))
    assert sure.target.endswith("95% assured") and sure.choices
    assert max(c.r for c in sure.choices) < max(c.r for c in plain.choices)
    law = get_law(f"{path}#fit:eq1:loss")
    for c in sure.choices:
        assert law.predict(2.5, c.r, c.D_needed).pi_high[0] <= 4.0 + 1e-9
    missed = [c for c in plain.choices if c.r not in {s.r for s in sure.choices}]
    assert missed and all(law.predict(2.5, c.r, 1000).pi_high[0] > 4.0 for c in missed)


def test_a_plan_with_records_fits_on_the_table_it_is_given(loss_table):
    spec = parse_plan({"records": "rows.csv", "target": {"metric": "loss", "sigma": 0.5},
                       "candidates": [{"name": "m3", "form": "eq1"}]})
    with pytest.raises(LawError, match="load_law_table"):
        plan(spec)
    result = plan(spec, loss_table)
    assert result.laws["m3"].name == "fit:eq1:loss" and result.choices
    assert result.choices[0].L0 == pytest.approx(loss_table.set_index("model")["L0"]["m3"].iloc[0])
