"""Record identity (issue 21 §7): execution-only settings (batch sizes of forward passes, LoRA's
gradient checkpointing and logging) are not part of an experiment's id, so the CLI and a study
write the same id for one evaluation; folders written before keep working without a rerun."""

import inspect
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from complaw.cli.evaluate import evaluate
from complaw.config import Compression, Experiment, Extrinsic, Intrinsic, Recovery, Speed, chain_id
from complaw.experiment.folder import StudyFolder
from complaw.experiment.pipeline import experiment_of
from complaw.experiment.records import Record, law_table, read_record
from complaw.study.grid import expand
from complaw.study.pool import build_pool
from complaw.study.runner import StudyRecords, run_study, saved_spec, study_status
from complaw.study.spec import parse_spec

REPO = Path(__file__).parents[3]


def _cli_default(name):
    return inspect.signature(evaluate).parameters[name].default.default


@pytest.mark.parametrize("cli_evaluation, spec_evaluation", [
    # complaw evaluate --model smollm2-135m --tasks arc_easy --limit 10 (as cli/evaluate.py
    # builds it) and a one-experiment study with extrinsic: {tasks: [arc_easy], limit: 10}
    (lambda: Extrinsic(tasks=("arc_easy",), limit=10,
                       options={"batch_size": _cli_default("batch_size")}),
     {"extrinsic": {"tasks": ["arc_easy"], "limit": 10}}),
    # complaw evaluate --model smollm2-135m --data ptb and intrinsic: {data: [ptb]}
    (lambda: Intrinsic(data="ptb", seq_len=_cli_default("seq_len"),
                       max_tokens=_cli_default("max_tokens"),
                       batch_size=_cli_default("batch_size")),
     {"intrinsic": {"data": ["ptb"], "batch_size": 8}}),
])
def test_the_cli_and_a_study_write_the_same_id(cli_evaluation, spec_evaluation):
    cli = experiment_of("smollm2-135m", cli_evaluation(), _cli_default("dtype"))
    [node] = expand(parse_spec({"models": ["smollm2-135m"],
                                "evaluations": spec_evaluation})).records()
    assert cli.id == node.id
    # the batch sizes differ (the CLI's default is 4, the study's 8) and the records keep them
    assert cli.to_dict() != node.experiment.to_dict()


def test_execution_settings_leave_the_id_and_what_is_measured_stays():
    base = Experiment("m", Extrinsic(tasks=("piqa",), limit=10),
                      compression=Compression("slicegpt", 0.3, calibration="ptb:train"),
                      recovery=Recovery("alpaca", 16, seq_len=256)).resolve()
    comp, rec, ev = base.compression, base.recovery, base.eval
    same = [
        replace(base, eval=replace(ev, options={**ev.options, "batch_size": 1})),
        replace(base, compression=replace(comp, options={**comp.options, "batch_size": 4})),
        replace(base, recovery=replace(rec, options={**rec.options, "grad_checkpointing": True,
                                                     "log_every": 1})),
    ]
    for other in same:
        assert other.id == base.id and other.to_dict() != base.to_dict()
    assert chain_id("m", "float32", same[1].compression) == chain_id("m", "float32", comp)
    assert (chain_id("m", "float32", comp, same[2].recovery)
            == chain_id("m", "float32", comp, rec))
    different = [
        replace(base, eval=replace(ev, options={**ev.options, "num_fewshot": 5})),
        replace(base, compression=replace(comp, options={**comp.options, "num_samples": 4})),
        replace(base, recovery=replace(rec, options={**rec.options, "batch_size": 8})),
        replace(base, recovery=replace(rec, options={**rec.options, "lr": 1e-3})),
    ]
    assert len({base.id, *(other.id for other in different)}) == 1 + len(different)
    speed = Speed(device="cpu").resolve()
    for changed in (replace(speed, device="cuda"),
                    replace(speed, options={**speed.options, "threads": 2}),
                    replace(speed, options={**speed.options, "batch_size": 4})):
        assert changed.id != speed.id  # speed measures its device, threads and shapes
    assert Intrinsic(batch_size=1).resolve().id == Intrinsic(batch_size=16).resolve().id


def test_a_law_pairs_records_measured_with_other_batch_sizes(tmp_path):
    for batch_size, compression, loss in ((4, None, 3.0), (8, Compression("prunenet", 0.3), 4.5)):
        evaluation = Intrinsic(data=("ptb:test",), batch_size=batch_size)
        record = Record.new("evaluate", Experiment("a", evaluation,
                                                   compression=compression).resolve())
        record.status = "ok"
        record.metrics = [{"metric": "loss", "dataset": "ptb:test", "value": loss}]
        record.write(tmp_path)
    assert law_table(tmp_path)[["L", "L0"]].values.tolist() == [[4.5, 3.0]]


@pytest.mark.parametrize("study", ["tests/unit/data/quickstart", "results/cpu-grid"])
def test_folders_of_earlier_ids_are_found_without_a_rerun(study, tmp_path):
    """Real folders written before execution-only settings left ids (their files are named by
    the earlier ids): every record is found as its experiment's, and the log's entries name
    nodes of the grid."""
    copy = tmp_path / "study"
    shutil.copytree(REPO / study, copy)
    folder = StudyFolder(copy)
    grid = expand(saved_spec(folder))
    names = {p.stem for p in folder.records.glob("*.json")}
    assert names - {n.id for n in grid.records()}  # named by earlier ids
    records = StudyRecords(folder, grid)
    found = {n.id: records.get(n.id) for n in grid.records()}
    assert sorted(found[i].id for i in found if found[i] is not None) == sorted(
        read_record(folder.records / f"{name}.json").id for name in names)
    status = study_status(copy)
    assert sum(s.done + s.failed for k, s in status.items()
               if k not in ("compress", "recover")) == len(names)
    aliases = grid.aliases()
    assert {e["id"] for e in folder.read_log()} <= set(aliases)


def test_resuming_an_old_folder_runs_nothing(tmp_path):
    copy = tmp_path / "quickstart"
    shutil.copytree(REPO / "tests/unit/data/quickstart", copy)
    before = sorted(p.name for p in (copy / "records").iterdir())
    summary = run_study(saved_spec(StudyFolder(copy)), copy, progress=False)
    assert sum(summary.ran.values()) == 0 and summary.problems == []
    assert sorted(p.name for p in (copy / "records").iterdir()) == before
    # the adaptive design's costs are the seconds the log gives (it names the earlier ids)
    folder = StudyFolder(copy)
    grid = expand(saved_spec(folder))
    ids = grid.aliases()
    logged = {ids[e["id"]]: e["seconds"] for e in folder.read_log() if e["status"] == "ok"}
    pool = build_pool(grid, folder).pool
    costs = pool.costs(pool.units)
    assert logged and all(costs[i] == seconds for i, seconds in logged.items())


@pytest.fixture
def tiny_spec(tiny_checkpoint, tiny_data_dir):
    return parse_spec({
        "models": [str(tiny_checkpoint)],
        "ratios": [0.5],
        "methods": [{"name": "layerdrop", "calibration": {"data": "ptb:train", "samples": 4,
                                                          "seq_len": 16}}],
        "evaluations": {"intrinsic": {"data": ["ptb:test"], "seq_len": 16, "max_tokens": 64}},
    })


def _as_written_before(study, grid):
    """Rename the records and checkpoints of `study` to their earlier ids, as complaw wrote
    them before execution-only settings left ids."""
    folder = StudyFolder(study)
    for node in grid.nodes.values():
        path = (folder.checkpoint_path(node.id) if node.produces == "checkpoint"
                else folder.record_path(node.id))
        assert node.earlier != node.id  # layerdrop's and intrinsic's batch sizes left the ids
        os.replace(path, path.with_name(node.earlier + path.suffix))


def test_old_checkpoints_and_failed_records_are_taken_over(tiny_spec, tmp_path):
    study = tmp_path / "study"
    run_study(tiny_spec, study, progress=False, keep_checkpoints=True)
    grid = expand(tiny_spec)
    compressed = next(n for n in grid.records() if n.experiment.compression)
    path = StudyFolder(study).record_path(compressed.id)
    failed = {**json.loads(path.read_text()), "status": "failed", "error": "OOM"}
    path.write_text(json.dumps(failed))
    _as_written_before(study, grid)

    status = study_status(study)  # reads, renames nothing
    assert {k: (v.done, v.failed, v.pending) for k, v in status.items()} == {
        "compress": (1, 0, 0), "intrinsic": (1, 1, 0)}
    assert not StudyFolder(study).checkpoint_path(compressed.parent).exists()

    summary = run_study(tiny_spec, study, progress=False, retry_failed=True,
                        keep_checkpoints=True)
    assert summary.ran == {"intrinsic": 1}  # the old checkpoint was used, not recomputed
    assert sorted(p.stem for p in (study / "records").glob("*.json")) == sorted(
        [n.earlier for n in grid.records() if n is not compressed] + [compressed.id])
    assert read_record(StudyFolder(study).record_path(compressed.id)).ok
    assert [p.name for p in (study / "checkpoints").iterdir()] == [compressed.parent]
