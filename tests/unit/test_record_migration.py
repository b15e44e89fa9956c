"""Records written before the typed Record (complaw a9b4f7b: a study of a tiny model and three
`complaw evaluate` / `complaw speed` runs, in tests/unit/data/records_a9b4f7b) still load,
fit and report, and a CLI record of the old shape names the same experiment as the study's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from complaw.experiment.records import law_table, migrate, read_records
from complaw.laws import fit
from complaw.report import build_report

OLD = Path(__file__).parent / "data" / "records_a9b4f7b"


def _by_id(records, ident):
    return next(r for r in records if r.id == ident)


def test_old_records_load_with_today_s_configs():
    found = read_records(OLD)
    assert found.problems == [] and len(found.records) == 18
    records = found.records
    # `complaw evaluate --tasks` kept batch_size and num_fewshot beside the tasks
    cli_zero_shot = _by_id(records, "e64680743f22b284")
    [study_zero_shot] = [r for r in records if r.config.is_base and r.id != cli_zero_shot.id
                         and r.config.eval.kind == "extrinsic"]
    assert cli_zero_shot.config == study_zero_shot.config
    assert cli_zero_shot.config.id == study_zero_shot.id
    # `complaw speed` kept its shapes in eval and the base model as an explicit baseline
    cli_speed = _by_id(records, "b2fa45efe3b35614")
    [study_speed] = [r for r in records if r.config.eval.kind == "speed" and r.id != cli_speed.id
                     and r.config.compression and r.config.compression.ratio == 0.5]
    assert cli_speed.config.id == study_speed.id
    # an evaluation of a recovered checkpoint kept the manifest's recovery entry
    recovered = _by_id(records, "02b50b456847bab4").config.recovery
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
