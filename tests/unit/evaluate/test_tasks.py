"""The local task YAMLs against lm-eval's built-in tasks fed the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import lm_eval.tasks
import pytest
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from complaw.errors import ConfigError, DataError
from complaw.evaluate.tasks import (
    MMLU_SUBJECTS,
    PAPER_TASKS,
    TASKS,
    parse_tasks,
    plan_tasks,
    write_tasks,
)

FIRST = 4  # documents whose requests are compared


@pytest.fixture(scope="module")
def local_tasks(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    write_tasks(folder, None, shared_data)
    return TaskManager(include_path=str(folder), include_defaults=False)


BUILTIN = Path(lm_eval.tasks.__file__).parent
BUILTIN_YAML = {"arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml",
                "piqa": "piqa/piqa.yaml", "hellaswag": "hellaswag/hellaswag.yaml",
                "winogrande": "winogrande/default.yaml"}


def builtin(name, root, tmp_path):
    """lm-eval's own task `name` (its shipped YAML, includes and functions resolved), with only
    its dataset replaced by the local rows."""
    path = BUILTIN_YAML.get(name, f"mmlu/default/{name}.yaml")
    config = load_yaml(BUILTIN / path)
    config.pop("tag", None)
    return ConfigurableTask(config={**config, **builtin_overrides(name, root, tmp_path)})


def _arrow(root, folder):
    return str(root / folder / "data-00000-of-00001.arrow")


def builtin_overrides(name, root, tmp_path):
    """How lm-eval's built-in task `name` is fed the local rows: only its dataset changes."""
    if name in ("arc_easy", "arc_challenge"):
        stem = "ARC-Easy" if name == "arc_easy" else "ARC-Challenge"
        files = {"test": str(root / "arc" / f"{stem}-test.jsonl")}
        return {"dataset_path": "json", "dataset_kwargs": {"data_files": files},
                "training_split": None, "validation_split": None}
    if name == "piqa":  # the rows joined with their labels, independently of complaw
        rows = [json.loads(line) for line in (root / "piqa/valid.jsonl").read_text().splitlines()]
        labels = (root / "piqa/valid-labels.lst").read_text().split()
        joined = tmp_path / "piqa.jsonl"
        joined.write_text("".join(json.dumps({**r, "label": int(y)}) + "\n"
                                  for r, y in zip(rows, labels, strict=True)))
        return {"dataset_path": "json", "dataset_kwargs": {"data_files": {
            "validation": str(joined)}}, "training_split": None}
    if name == "hellaswag":
        files = {"validation": _arrow(root, "hellaswag/validation")}
    elif name == "winogrande":
        files = {"validation": _arrow(root, "winogrande/winogrande_xl/validation")}
    else:  # mmlu_<subject>
        subject = name.removeprefix("mmlu_")
        base = f"mmlu/hails_mmlu_no_train/{subject}"
        files = {"test": _arrow(root, f"{base}/test"), "dev": _arrow(root, f"{base}/dev")}
    return {"dataset_path": "arrow", "dataset_name": None, "training_split": None,
            "dataset_kwargs": {"data_files": files}}


def requests(task, n=FIRST):
    task.build_all_requests(limit=n, rank=0, world_size=1)
    return [(i.doc_id, i.arguments) for i in task.instances]


def only(loaded):
    (task,) = loaded.values()
    return task


@pytest.mark.parametrize("name", ["arc_easy", "arc_challenge", "piqa", "hellaswag",
                                  "winogrande"])
def test_task_matches_builtin(name, local_tasks, shared_data, tmp_path):
    local = only(local_tasks.load_task_or_group([f"{name}_local"]))
    assert len(list(local.eval_docs)) == TASKS.get(name).docs
    reference = builtin(name, shared_data, tmp_path)
    assert len(list(reference.eval_docs)) == TASKS.get(name).docs
    ours, theirs = requests(local), requests(reference)
    assert len(ours) >= 2 * FIRST
    assert ours == theirs
    assert [m["metric"] for m in local.config.metric_list] == [
        m["metric"] for m in reference.config.metric_list]


def test_a_task_that_includes_another_is_written_with_it(shared_data, tmp_path):
    """arc_challenge.yaml includes arc_easy's (as lm-eval's own does): written alone, it still
    loads, on its own data."""
    assert write_tasks(tmp_path, ["arc_challenge"], shared_data) == ["arc_challenge_local"]
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    task = only(manager.load_task_or_group(["arc_challenge_local"]))
    assert len(list(task.eval_docs)) == TASKS.get("arc_challenge").docs


def test_mmlu_group_counts_and_prompts(local_tasks, shared_data, tmp_path):
    group = local_tasks.load_task_or_group(["mmlu_local"])
    (subtasks,) = group.values()
    assert len(subtasks) == len(MMLU_SUBJECTS) == 57
    assert sum(len(list(t.eval_docs)) for t in subtasks.values()) == TASKS.get("mmlu").docs
    for subject in ("anatomy", "high_school_us_history"):
        local = only(local_tasks.load_task_or_group([f"mmlu_local_{subject}"]))
        reference = builtin(f"mmlu_{subject}", shared_data, tmp_path)
        assert requests(local) == requests(reference)


def test_parse_tasks():
    assert parse_tasks("paper") == PAPER_TASKS
    assert parse_tasks("arc_easy, piqa,arc_easy") == ("arc_easy", "piqa")
    with pytest.raises(ConfigError, match="did you mean 'hellaswag'.*valid: arc_challenge"):
        parse_tasks("hellaswa")


def test_missing_files_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "arc").mkdir()
    with pytest.raises(DataError, match=r"piqa/valid\.jsonl.*hub is off"):
        plan_tasks(("piqa",), tmp_path)
    with pytest.raises(DataError, match=r"arc/ARC-Easy-test\.jsonl"):
        write_tasks(tmp_path / "out", ["arc_easy"], tmp_path)
    assert not (tmp_path / "out").exists()


def test_hub_fallback_when_online(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    (plan,) = plan_tasks(("arc_easy",), tmp_path)
    assert (plan.lm_name, plan.source) == ("arc_easy", "hub:allenai/ai2_arc")
