"""Synthetic studies and their reports, built once per test session (building takes seconds)."""

from __future__ import annotations

import pytest
from report_synth import make_study

from complaw.report import build_report


@pytest.fixture(scope="session")
def full_study(tmp_path_factory):
    """Two models, prunenet and slicegpt, 5 ratios, D in {0, 1000, 4000}, three test sets,
    two zero-shot tasks (with task loss) and their mean, runtime, throughput (and speedups
    measured against the base for one model), one failed record, spec.yaml, log.jsonl and
    study.json."""
    return make_study(tmp_path_factory.mktemp("full"), task_loss=True)


@pytest.fixture(scope="session")
def full_report(full_study):
    return build_report(full_study)


@pytest.fixture(scope="session")
def partial_study(tmp_path_factory):
    """Base models and calibration-free compression only: no RFT, no extrinsic, no speed,
    no spec, log or study.json."""
    return make_study(
        tmp_path_factory.mktemp("partial"), methods=("prunenet",), rft=(None,),
        zeroshot=False, speed=False, runner_files=False,
    )


@pytest.fixture(scope="session")
def partial_report(partial_study):
    return build_report(partial_study)
