"""Each figure's plotted measurements are the records' values (read here straight from the JSON
files, not through the report's loader); its law curves are the fitted laws."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from complaw.report import FIGURES, Analysis, Skip, load_study
from complaw.report.figures import IDEAL, LAW, OBS


@pytest.fixture(scope="module")
def analysis(full_study) -> Analysis:
    return Analysis(load_study(full_study))


@pytest.fixture(scope="module")
def records(full_study) -> list[dict]:
    files = sorted((full_study / "records").glob("*.json"))
    return [r for r in (json.loads(f.read_text()) for f in files) if r["status"] == "ok"]


def _key(x: float, y: float) -> tuple[float, float]:
    return (round(float(x), 9), round(float(y), 9))


def plotted(fig, gid: str = OBS) -> Counter:
    """The (x, y) points of every artist with ``gid``, as a multiset."""
    points: Counter = Counter()
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid() == gid:
                points.update(_key(x, y) for x, y in line.get_xydata())
    return points


def _points(records, metric: str, calibrated: bool) -> Counter:
    """Figures 1/3/7/8: D = 0 variants and the largest-D variants, each from the base at r = 0
    (drawn once per column)."""
    out: Counter = Counter()
    for rec in records:
        comp, rft = rec["config"]["compression"], rec["config"]["recovery"]
        for m in rec["metrics"]:
            if m["metric"] != metric:
                continue
            if comp is None and rft is None:
                out[_key(0.0, m["value"])] += 2
            elif comp and (comp["calibration"] is not None) == calibrated:
                if rft is None or rft["tokens"] == 4000:
                    out[_key(comp["ratio"], m["value"])] += 1
    return out


@pytest.mark.parametrize(
    ("name", "metric", "calibrated"),
    [("fig01", "accuracy", False), ("fig03", "loss", False), ("fig07", "loss", True),
     ("fig08", "accuracy", True)],
)
def test_metric_against_r_shows_the_records(analysis, records, name, metric, calibrated):
    fig = FIGURES.get(name).draw(analysis)
    assert plotted(fig) == _points(records, metric, calibrated)
    assert len(fig.axes) == 2 * (3 if metric == "loss" else 3)  # 3 sets or 2 tasks + mean


def _base(records, metric: str) -> dict[tuple[str, str], float]:
    return {
        (r["config"]["model"], m["dataset"]): m["value"]
        for r in records
        if r["config"]["compression"] is None and r["config"]["recovery"] is None
        for m in r["metrics"] if m["metric"] == metric
    }


def test_speedup_shows_runtime_and_throughput_ratios(analysis, records):
    """Runtime: S0 / S. Prefill / decode: the records' own speedup (measured against the base)
    where there is one, else throughput over the base model's throughput."""
    fig = FIGURES.get("fig02").draw(analysis)
    base_rt = _base(records, "runtime")
    base_tps = _base(records, "throughput")
    expected: Counter = Counter()
    ideal: Counter = Counter()
    for r in records:
        comp = r["config"]["compression"]
        if comp is None:
            continue
        model = r["config"]["model"]
        direct = {m["dataset"]: m for m in r["metrics"] if m["metric"] == "speedup"}
        for m in r["metrics"]:
            if m["metric"] == "runtime":
                expected[_key(comp["ratio"], base_rt[(model, m["dataset"])] / m["value"])] += 1
            if m["metric"] == "throughput":
                if m["dataset"] in direct:
                    expected[_key(comp["ratio"], direct[m["dataset"]]["value"])] += 1
                    ideal[_key(comp["ratio"], direct[m["dataset"]]["ideal"])] += 1
                else:
                    expected[_key(comp["ratio"], m["value"] / base_tps[(model, m["dataset"])])] += 1
    assert sum(ideal.values()) > 0 and sum(expected.values()) > sum(ideal.values())
    assert plotted(fig) == expected
    assert plotted(fig, IDEAL) == ideal
    assert [ax.get_title() for ax in fig.axes] == [
        "runtime speedup S0 / S", "decode speedup", "prefill speedup"]


def _law_rows(records, metric: str, dataset_ok):
    """(r, D, L, L0) of calibration-free compressed records, as law_table pairs them."""
    base = _base(records, metric)
    for r in records:
        comp, rft = r["config"]["compression"], r["config"]["recovery"]
        if comp is None or comp["calibration"] is not None:
            continue
        for m in r["metrics"]:
            if m["metric"] == metric and dataset_ok(m["dataset"]):
                L0 = base[(r["config"]["model"], m["dataset"])]
                yield comp["ratio"], (rft or {}).get("tokens", 0), m["value"], L0


def _mean(d: str) -> bool:
    return d.startswith("zeroshot")


def test_laws_against_observations(analysis, records):
    a = analysis
    fig = FIGURES.get("fig04a").draw(a)
    expected = Counter(_key(r, L) for r, D, L, _ in _law_rows(records, "loss", bool) if D == 0)
    assert plotted(fig) == expected
    fig = FIGURES.get("fig04b").draw(a)
    expected = Counter(_key(r, L) for r, D, L, _ in _law_rows(records, "accuracy", _mean)
                       if D == 0)
    assert plotted(fig) == expected
    fig = FIGURES.get("fig04c").draw(a)
    rows = list(_law_rows(records, "loss", bool))
    assert plotted(fig) == Counter(_key(D, L / L0) for r, D, L, L0 in rows)
    # the curves are the method's best law by held-out error, over L0, one per (L0, r)
    best = a.best("intrinsic")[0]
    assert best.group["method"] == "prunenet"
    law = best.law()
    curves = [line.get_xydata() for line in fig.axes[0].get_lines() if line.get_gid() == LAW]
    cells = sorted({(L0, r) for r, D, L, L0 in rows})
    assert len(curves) == len(cells)
    for xy, (L0, r) in zip(curves, cells, strict=True):
        np.testing.assert_allclose(xy[:, 1], law.predict(L0, r, xy[:, 0]).L / L0, rtol=1e-12)


def test_heldout_figure_shows_the_rows_above_r_05(analysis, records):
    fig = FIGURES.get("heldout").draw(analysis)
    first = fig.axes[0]
    points = [line.get_xydata() for line in first.get_lines() if line.get_gid() == "obs"]
    measured = sorted(L for r, D, L, _ in _law_rows(records, "loss", bool) if r > 0.5)
    assert points and sorted(points[0][:, 0]) == pytest.approx(measured)


def test_per_dataset_and_runtime_laws(analysis, records):
    fig = FIGURES.get("fig10").draw(analysis)
    expected = Counter(_key(r, L) for r, D, L, _ in _law_rows(records, "loss", bool))
    assert plotted(fig) == expected
    assert len(fig.axes) == 3
    fig = FIGURES.get("fig06").draw(analysis)
    expected = Counter(_key(r, L) for r, D, L, _ in _law_rows(records, "runtime", bool))
    assert plotted(fig) == expected


def test_critical_ratio_curves_are_the_formula(analysis):
    fig = FIGURES.get("fig05").draw(analysis)
    fits = {k: analysis.fits(k, "eq1", ("model",)).results for k in ("intrinsic", "extrinsic")}
    for ax, kind in zip(fig.axes, ("intrinsic", "extrinsic"), strict=True):
        lines = [line for line in ax.get_lines() if line.get_gid() == LAW]
        assert len(lines) == len(fits[kind])
        for line, f in zip(lines, fits[kind], strict=True):
            sigma, r = line.get_xydata().T
            beta = f.coefficients["beta"].estimate
            np.testing.assert_allclose(r, np.clip(sigma ** (1 / beta) - 1, 0, 1), rtol=1e-12)


def test_figures_skip_with_a_reason(partial_study):
    a = Analysis(load_study(partial_study))
    with pytest.raises(Skip, match="calibration-based"):
        FIGURES.get("fig07").draw(a)
    with pytest.raises(Skip, match="single RFT size"):
        FIGURES.get("fig04c").draw(a)
