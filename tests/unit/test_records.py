import json
import os

import pytest

from complaw.config import Compression, Experiment, Intrinsic, Recovery, config_id
from complaw.errors import RecordError
from complaw.experiment.records import LAW_COLUMNS, Record, law_table, read_records
from complaw.io import atomic_folder, write_json_atomic


def test_config_id_is_content_addressed():
    a = {"model": "m", "eval": {"seq_len": 8, "data": "ptb:test"}}
    b = {"eval": {"data": "ptb:test", "seq_len": 8}, "model": "m"}
    assert config_id(a) == config_id(b)
    assert config_id(a) != config_id({**a, "model": "n"})


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    record = Record.new("evaluate", Experiment(model="m", eval=Intrinsic()))
    path = record.write(tmp_path)
    assert json.loads(path.read_text())["id"] == record.id

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RuntimeError):
        write_json_atomic(path, {"other": 1})
    assert json.loads(path.read_text())["id"] == record.id  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_output_folder_that_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(RecordError, match="runs.*is a file"):
        Record.new("evaluate", Experiment(model="m", eval=Intrinsic())).write(blocker / "sub")
    assert blocker.read_text() == "not a folder"


def test_atomic_folder(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(ValueError), atomic_folder(target) as tmp:
        (tmp / "half.bin").write_text("x")
        raise ValueError("crash")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_folder(target) as tmp:
        (tmp / "done.bin").write_text("x")
    assert (target / "done.bin").is_file()
    with pytest.raises(RecordError, match="not empty.*--overwrite"), atomic_folder(target):
        pass
    with atomic_folder(target, overwrite=True) as tmp:
        (tmp / "new.bin").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new.bin"]


def _record(folder, model, value, compression=None, recovery=None, status="ok", params=None):
    config = Experiment(model=model, eval=Intrinsic(data=("ptb:test",), seq_len=8),
                        compression=compression and Compression(**compression),
                        recovery=recovery and Recovery(**recovery))
    record = Record.new("evaluate", config)
    record.status = status
    record.params = params or {}
    record.metrics = [{"metric": "loss", "dataset": "ptb:test", "value": value}]
    return record.write(folder)


def test_loader_reports_bad_files_and_law_table_joins_the_base(tmp_path):
    _record(tmp_path, "a", 3.0, params={"total": 9e6, "blocks": 7e6})
    _record(tmp_path, "a", 4.5, compression={"method": "prunenet", "ratio": 0.3},
            params={"total": 8e6, "blocks": 6e6})
    _record(tmp_path, "a", 3.5, compression={"method": "prunenet", "ratio": 0.3,
                                             "calibration": "ptb:validation"},
            recovery={"dataset": "ptb:train", "tokens": 1000})
    _record(tmp_path, "b", 9.0, compression={"method": "prunenet", "ratio": 0.5})  # no base
    _record(tmp_path, "a", 9.9, compression={"method": "x", "ratio": 0.1}, status="failed")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text('{"id": "x"}')

    found = read_records(tmp_path)
    assert len(found.records) == 5 and {r.config.model for r in found.records} == {"a", "b"}
    assert sorted(p[0].rsplit("/", 1)[1] for p in found.problems) == [
        "broken.json", "partial.json"]

    table = law_table(tmp_path).sort_values("L")
    assert list(table.columns) == [*LAW_COLUMNS, "seed", "experiment", "L_se", "chance", "T0",
                                   "N0"]
    assert set(table["N0"]) == {7e6}  # the base model's non-embedding parameters, on every row
    assert set(table["seed"]) == {0} and table["L_se"].isna().all()
    assert table[["L", "L0", "r", "D"]].values.tolist() == [[3.5, 3.0, 0.3, 1000],
                                                            [4.5, 3.0, 0.3, 0]]
    assert table["calibration"].tolist() == ["ptb:validation", "none"]
    assert table.attrs["unmatched"] == 1


def test_missing_records_folder(tmp_path):
    with pytest.raises(RecordError, match="does not exist"):
        read_records(tmp_path / "nowhere")


def test_law_table_never_pairs_or_mixes_data_variants(tmp_path):
    def rec(folder, value, sha, compression=None):
        config = Experiment(model="a", eval=Intrinsic(data=("wikitext2:test",)),
                            compression=compression and Compression(**compression))
        record = Record.new("evaluate", config)
        record.status = "ok"
        record.data = {"wikitext2:test": {"source": "file", "sha256": sha}}
        record.metrics = [{"metric": "loss", "dataset": "wikitext2:test", "value": value}]
        record.write(folder)

    prune = {"method": "prunenet", "ratio": 0.3}
    raw, v1 = tmp_path / "raw", tmp_path / "v1"
    rec(raw, 3.0, "aa")
    rec(raw, 4.0, "aa", prune)
    rec(v1, 2.0, "bb")
    rec(v1, 2.5, "bb", prune)
    [row] = law_table(raw).to_dict("records")
    assert row["dataset"] == "wikitext2:test" and (row["L"], row["L0"]) == (4.0, 3.0)

    merged = tmp_path / "merged"  # both variants in one folder (same config ids: renamed apart)
    merged.mkdir()
    for i, path in enumerate([*raw.glob("*.json"), *v1.glob("*.json")]):
        (merged / f"{i}.json").write_bytes(path.read_bytes())
    table = law_table(merged).sort_values("L")
    assert table[["L", "L0"]].values.tolist() == [[2.5, 2.0], [4.0, 3.0]]
    assert table["dataset"].nunique() == 2
    assert all(d.startswith("wikitext2:test@") for d in table["dataset"])


def _zero_shot(folder, kind, acc, bpb, compression=None):
    """A zero-shot (kind Extrinsic) or task-loss-only (TaskLoss) record on arc_easy."""
    config = Experiment(model="m", eval=kind(tasks=("arc_easy",), limit=5),
                        compression=compression and Compression(**compression))
    record = Record.new("evaluate", config)
    record.status = "ok"
    entry = {"dataset": "arc_easy", "n_docs": 5, "chance": 0.26}
    if acc is not None:
        record.metrics.append({"metric": "accuracy", "value": acc, "stderr": 0.2, **entry})
    record.metrics.append({"metric": "task_loss", "value": bpb, "stderr": 0.05, **entry})
    record.write(folder)


def test_law_table_task_loss_from_either_kind_once_with_its_standard_error(tmp_path):
    from complaw.config import Extrinsic, TaskLoss

    _zero_shot(tmp_path, Extrinsic, 0.6, 1.0)  # the base: accuracy and task loss
    half = {"method": "prunenet", "ratio": 0.5}
    _zero_shot(tmp_path, TaskLoss, None, 1.5, half)  # task loss alone, against that base
    _zero_shot(tmp_path, TaskLoss, None, 1.3, {"method": "prunenet", "ratio": 0.3})
    _zero_shot(tmp_path, Extrinsic, 0.4, 1.5, half)  # the same point scored in full: once
    table = law_table(tmp_path).sort_values(["metric", "r"])
    assert table[["metric", "r", "L", "L0"]].values.tolist() == [
        ["accuracy", 0.5, 0.4, 0.6], ["task_loss", 0.3, 1.3, 1.0], ["task_loss", 0.5, 1.5, 1.0]]
    assert table["L_se"].tolist() == [0.2, 0.05, 0.05]
    assert table["chance"].tolist() == [0.26] * 3
