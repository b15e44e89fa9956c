"""Records written before the typed Record (complaw a9b4f7b: a study of a tiny model and three
`complaw evaluate` / `complaw speed` runs, in tests/unit/data/records_a9b4f7b) still load,
fit and report, and a CLI record of the old shape names the same experiment as the study's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from complaw.experiment.records import law_table, migrate, read_record, read_records
from complaw.laws import fit
from complaw.report import build_report

OLD = Path(__file__).parent / "data" / "records_a9b4f7b"


def _in_file(name):
    """The record in the file `name`.json (named by the record's id when it was written)."""
    return read_record(OLD / f"{name}.json")


def test_old_records_load_with_today_s_configs():
    found = read_records(OLD)
    # 18 files; the CLI's zero-shot and speed records name experiments the study also ran
    # (under older ids): each experiment counts once
    assert len(list(OLD.glob("*.json"))) == 18
    assert found.problems == [] and len(found.records) == 16
    assert len({r.id for r in found.records}) == 16
    # `complaw evaluate --tasks` kept batch_size and num_fewshot beside the tasks
    cli_zero_shot, study_zero_shot = _in_file("e64680743f22b284"), _in_file("8bf1b8ec3a5983f3")
    assert cli_zero_shot.config == study_zero_shot.config
    assert cli_zero_shot.id == study_zero_shot.id == study_zero_shot.config.id
    # `complaw speed` kept its shapes in eval and the base model as an explicit baseline
    cli_speed, study_speed = _in_file("b2fa45efe3b35614"), _in_file("df6d01cf1654969b")
    assert cli_speed.config == study_speed.config and cli_speed.id == study_speed.id
    # an evaluation of a recovered checkpoint kept the manifest's recovery entry
    recovered = _in_file("02b50b456847bab4").config.recovery
    assert (recovered.tokens, recovered.samples, recovered.dataset) == (64, None, "ptb:train")
    assert recovered.options["rank"] == 16 and recovered.options["batch_size"] == 2


def test_migrate_leaves_today_s_shape_alone():
    for path in OLD.glob("*.json"):
        data = json.loads(path.read_text())
        once = migrate(data)
        assert migrate(once) == once


def test_old_records_fit_and_report(tmp_path):
    table = law_table(OLD)
    loss = table[table["metric"] == "loss"]
    assert len(loss) == 7 and set(loss["D"]) == {0, 64}
    [law] = fit(loss, "eq1")
    assert law.n == 7
    study = tmp_path / "old"
    shutil.copytree(OLD, study)
    report = build_report(study)
    assert report.errors == {} and (study / "report" / "index.html").is_file()
