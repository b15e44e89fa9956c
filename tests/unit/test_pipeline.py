"""Evaluate → record → law_table, end to end on a tiny model and tiny data."""

import json

from typer.testing import CliRunner

from complaw.cli import app
from complaw.experiment.records import law_table

runner = CliRunner()


def evaluate(model, out):
    args = ["evaluate", "--model", str(model), "--data", "ptb:test", "--seq-len", "16",
            "--max-tokens", "256", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_compressed_checkpoint_record_pairs_with_its_base(tiny_checkpoint, tiny_pruned,
                                                          tiny_data_dir, tmp_path):
    ckpt = tiny_pruned

    out = tmp_path / "runs"
    evaluate(tiny_checkpoint, out)
    evaluate(ckpt, out)
    records = {r["config"]["compression"] is None: r
               for r in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    base, pruned = records[True], records[False]
    assert pruned["config"]["model"] == base["config"]["model"] == str(tiny_checkpoint)
    assert pruned["config"]["compression"]["method"] == "prunenet"
    assert pruned["config"]["compression"]["ratio"] == 0.5
    assert pruned["params"]["total"] < base["params"]["total"]

    [row] = law_table(out).to_dict("records")
    assert row["r"] == 0.5 and row["D"] == 0 and row["metric"] == "loss"
    assert row["L0"] == base["metrics"][0]["value"]
    assert row["L"] == pruned["metrics"][0]["value"]


def test_records_name_the_calibration_data_variant(tiny_checkpoint, tiny_data_dir, tmp_path):
    """A calibrated compression's checkpoint, and every record of it, name the exact
    calibration data (file and sha256), as the test data are named."""
    import hashlib

    folder = tmp_path / "sliced"
    result = runner.invoke(app, ["compress", "--model", str(tiny_checkpoint), "--method",
                                 "slicegpt", "--ratio", "0.25", "--calibration", "ptb:train",
                                 "--calib-samples", "4", "--calib-seq-len", "32",
                                 "--out", str(folder)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "runs"
    evaluate(folder, out)
    (record,) = (json.loads(p.read_text()) for p in out.glob("*.json"))
    calibration = record["data"]["calibration"]
    train = tiny_data_dir / "ptb" / "train.txt"
    assert calibration["data"] == "ptb:train"
    assert calibration["sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert set(record["data"]) == {"calibration", "ptb:test"}
