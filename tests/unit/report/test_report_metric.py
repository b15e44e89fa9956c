"""One Metric registry: a metric registered in one call, and written by records, reaches the
law table, `fit`, `plan` and the report (its tables and axis labels); unregistered, it is
dropped again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure
from report_synth import MODELS, make_study

from complaw.errors import LawError
from complaw.laws import fit, parse_plan, plan
from complaw.laws.metrics import METRICS, Metric
from complaw.report.analysis import Analysis
from complaw.report.figures import law_panel
from complaw.report.study import load_study
from complaw.report.tables import TABLES

LABEL = "test perplexity (exp nats)"


@pytest.fixture
def perplexity():
    """``perplexity`` registered (a lower-better loss, default form eq2) for the test only."""
    metric = METRICS.add("perplexity", Metric("perplexity", "intrinsic", "loss", False, "eq2",
                                              "test perplexity", "exp nats"))
    yield metric
    METRICS._items.pop("perplexity")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """One model, prunenet without RFT: each loss entry of its records also gives its
    perplexity as a metric of its own."""
    folder = make_study(tmp_path_factory.mktemp("ppl"), methods=("prunenet",), rft=(None,),
                        zeroshot=False, speed=False, models=("tiny-a",))
    for path in (folder / "records").glob("*.json"):
        record = json.loads(path.read_text())
        record["metrics"] += [dict(m, metric="perplexity", value=float(np.exp(m["value"])))
                              for m in record["metrics"] if m["metric"] == "loss"]
        path.write_text(json.dumps(record))
    return folder


def test_a_registered_metric_reaches_fit_plan_and_report(perplexity, study_dir):
    study = load_study(study_dir)
    rows = study.laws[study.laws["metric"] == "perplexity"]
    assert len(rows) == len(study.laws[study.laws["metric"] == "loss"]) > 0

    # fit: its default form (eq2), and the loss family's forms but not accuracy's
    found = fit(rows, None).only()
    assert (found.metric, found.form) == ("perplexity", "eq2")
    # perplexity = exp(L0^a (1+r)^b): log perplexity grows with r, so beta > 0
    assert found.law().coefficients["beta"] > 0
    assert fit(rows, "degradation").only().metric == "perplexity"
    with pytest.raises(LawError, match=r"retention fits metric\(s\) accuracy, but the table "
                       "has only perplexity"):
        fit(rows, "retention")

    # plan: a target on it, lower is better (perplexity <= L0 / sigma)
    wiki = rows[rows["dataset"] == "wikitext2:test"]
    spec = parse_plan({
        "target": {"metric": "perplexity", "sigma": 0.05}, "records": str(study_dir),
        "candidates": [{"name": "tiny-a", "form": "eq2", "where": {"dataset": "wikitext2:test"},
                        "params": MODELS["tiny-a"]["params"]}],
        "objective": "smallest"})
    assert spec.target.describe() == "perplexity <= L0 / 0.05"
    result = plan(spec, wiki)
    L0 = float(wiki["L0"].iloc[0])
    assert all(c.target == pytest.approx(L0 / 0.05) and c.L <= c.target
               for c in result.choices)
    # the smallest model: the largest r whose predicted perplexity stays under the target,
    # and the next ratio's does not (perplexity grows with r)
    best = result.choices[0]
    assert 0 < best.r < max(spec.ratios) and best.r == max(c.r for c in result.choices)
    assert result.laws["tiny-a"].predict(L0, best.r + 0.05).L[0] > best.target

    # report: the configuration table lists its datasets; a figure labels its axis
    config = TABLES.get("config").make(Analysis(study)).data.set_index("item")["values"]
    assert config["perplexity datasets"] == config["loss datasets"]
    fig = Figure()
    ax = fig.add_subplot()
    law_panel(ax, wiki, found.law(), "r")
    assert ax.get_ylabel() == LABEL


def test_an_unregistered_metric_is_dropped(study_dir):
    study = load_study(study_dir)
    assert "perplexity" not in set(study.laws["metric"])
    assert any(reason.startswith("metric perplexity") for reason in study.dropped)
    with pytest.raises(LawError, match="unknown metric 'perplexity'"):
        parse_plan({"target": {"metric": "perplexity", "sigma": 0.5},
                    "candidates": [{"name": "m", "L0": {"perplexity": 20.0}, "law": "x"}]})
