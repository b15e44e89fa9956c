"""Zero-shot tasks: lm-eval 0.4.13's tasks of the same name, read from a local data directory.

Each task is one YAML template in this folder (`<name>.yaml`) with lm-eval's own prompt, choices,
split and metrics; only the dataset is local. `${DATA_DIR}` in a template is filled in when the
task folder is written (`write_tasks`): lm-eval then runs the tasks with
`TaskManager(include_path=folder)` or `lm_eval ... --include_path folder`, under the names
`<name>_local` (`mmlu_local` is a group over 57 `mmlu_local_<subject>` tasks, each scored on its
subject's test split; the group's acc is the mean over subjects weighted by their number of
documents, as lm-eval's `mmlu` group computes it through its four category groups).

Where the data directory lacks a task's files and the hub can be reached, lm-eval's built-in
task (`arc_easy`, ...) is used instead (`plan_tasks`). Adding a task is one template and one
`TASKS.add(...)` call.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import yaml

from complaw.data.registry import data_dir, hub_offline
from complaw.errors import ConfigError, DataError
from complaw.io import ensure_dir, write_text_atomic
from complaw.registry import Registry

HELPERS = "complaw_task_helpers.py"
PAPER_TASKS = ("piqa", "winogrande", "hellaswag", "arc_easy", "arc_challenge", "mmlu")

MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations", "security_studies",
    "sociology", "us_foreign_policy", "virology", "world_religions",
)


@dataclass(frozen=True)
class ZeroShotTask:
    """One task: lm-eval's `name`, the metric that enters the extrinsic L, the data files it
    reads (relative to DATA_DIR), its canonical number of scored documents, and the hub dataset
    of lm-eval's built-in task (the fallback)."""

    name: str
    metric: str
    files: tuple[str, ...]
    docs: int
    hub: str
    subjects: tuple[str, ...] = ()  # the subtasks of a group task (mmlu)
    base: str | None = None  # the task whose YAML this one's includes (lm-eval's `include:`)

    @property
    def local_name(self) -> str:
        return f"{self.name}_local"

    def subtask_names(self) -> list[str]:
        return [f"{self.local_name}_{s}" for s in self.subjects]

    def missing_files(self, root: Path | None) -> list[str]:
        if root is None:
            return list(self.files)
        return [f for f in self.files if not (root / f).is_file()]


TASKS: Registry[ZeroShotTask] = Registry("zero-shot task", ConfigError)


def _arrow(folder: str) -> str:
    return f"{folder}/data-00000-of-00001.arrow"


TASKS.add("arc_easy", ZeroShotTask(
    "arc_easy", "acc_norm", ("arc/ARC-Easy-test.jsonl",), 2376, "allenai/ai2_arc"))
TASKS.add("arc_challenge", ZeroShotTask(
    "arc_challenge", "acc_norm", ("arc/ARC-Challenge-test.jsonl",), 1172, "allenai/ai2_arc",
    base="arc_easy"))
TASKS.add("piqa", ZeroShotTask(
    "piqa", "acc_norm", ("piqa/valid.jsonl", "piqa/valid-labels.lst"), 1838, "baber/piqa"))
TASKS.add("hellaswag", ZeroShotTask(
    "hellaswag", "acc_norm", (_arrow("hellaswag/validation"),), 10042, "Rowan/hellaswag"))
TASKS.add("winogrande", ZeroShotTask(
    "winogrande", "acc", (_arrow("winogrande/winogrande_xl/validation"),), 1267,
    "allenai/winogrande"))
TASKS.add("mmlu", ZeroShotTask(
    "mmlu", "acc",
    tuple(_arrow(f"mmlu/hails_mmlu_no_train/{s}/{split}")
          for s in MMLU_SUBJECTS for split in ("test", "dev")),
    14042, "cais/mmlu", subjects=MMLU_SUBJECTS))


def parse_tasks(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Task names from "piqa,arc_easy" or a list; "paper" means the paper's six. Unknown names
    raise ConfigError listing the valid ones and the closest match."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        expanded = PAPER_TASKS if name == "paper" else (name,)
        for item in expanded:
            if item not in TASKS:
                close = difflib.get_close_matches(item, list(TASKS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"unknown zero-shot task {item!r}{hint}; valid: {', '.join(TASKS)}, paper"
                )
            if item not in out:
                out.append(item)
    if not out:
        raise ConfigError("no zero-shot task given; pass e.g. --tasks arc_easy or --tasks paper")
    return tuple(out)


@dataclass(frozen=True)
class TaskPlan:
    """Where each task is read from: `lm_name` is the name lm-eval runs (local or built-in)."""

    task: ZeroShotTask
    lm_name: str
    source: str  # "local:<files>" or "hub:<dataset>"

    @property
    def local(self) -> bool:
        return self.source.startswith("local:")


def plan_tasks(names: tuple[str, ...], directory: str | Path | None = None) -> list[TaskPlan]:
    """Pick each task's source: the data directory when it has every file of the task, else
    lm-eval's built-in task from the hub. Raises DataError naming the first missing file when
    the hub is switched off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    root = data_dir(directory)
    plans = []
    for name in names:
        task = TASKS.get(name)
        missing = task.missing_files(root)
        if not missing:
            shown = task.files[0] if len(task.files) < 3 else f"{Path(task.files[0]).parts[0]}/"
            plans.append(TaskPlan(task, task.local_name, f"local:{root / shown}"))
            continue
        if hub_offline():
            where = f"{root / missing[0]}" if root else f"DATA_DIR/{missing[0]} (no data dir set)"
            raise DataError(
                f"task {name!r} needs {where}, which is missing, and the hub is off "
                "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); put the file there or pass --data-dir / "
                "set COMPLAW_DATA_DIR"
            )
        plans.append(TaskPlan(task, task.name, f"hub:{task.hub}"))
    return plans


def _template(name: str) -> Template:
    return Template(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


def write_tasks(
    folder: str | Path, names: tuple[str, ...] | list[str] | None = None,
    directory: str | Path | None = None,
) -> list[str]:
    """Write the local task YAMLs of `names` (default: all) for the data directory `directory`
    (default $COMPLAW_DATA_DIR) into `folder`, with the helper module they need; returns the
    lm-eval task names to run. Pass `folder` to lm-eval as `include_path` / `--include_path`.
    The data directory must hold each task's files (else DataError naming the first missing)."""
    root = data_dir(directory)
    selected = [TASKS.get(n) for n in (names or list(TASKS))]
    for task in selected:
        missing = task.missing_files(root)
        if missing:
            where = root / missing[0] if root else f"DATA_DIR/{missing[0]} (no data dir set)"
            raise DataError(f"task {task.name!r} needs {where}, which is missing; pass "
                            "--data-dir or set COMPLAW_DATA_DIR to a folder that has it")
    assert root is not None  # every task has files, so a missing root failed above
    folder = ensure_dir(folder)
    data = str(root.resolve())
    if any(c in data for c in '"\\'):
        raise DataError(f"data directory {data!r} contains a quote or backslash; move it")
    write_text_atomic(folder / HELPERS, _template(HELPERS).substitute(DATA_DIR=data))
    bases = {t.base for t in selected if t.base} - {t.name for t in selected}
    for base in map(TASKS.get, sorted(bases)):  # what a task includes (read only if it runs)
        write_text_atomic(folder / f"{base.local_name}.yaml",
                          _template(f"{base.name}.yaml").substitute(DATA_DIR=data))
    out = []
    for task in selected:
        template = _template(f"{task.name}.yaml")
        if not task.subjects:
            write_text_atomic(folder / f"{task.local_name}.yaml",
                              template.substitute(DATA_DIR=data))
        else:
            for subject in task.subjects:
                text = template.substitute(DATA_DIR=data, SUBJECT=subject,
                                           SUBJECT_TEXT=subject.replace("_", " "))
                write_text_atomic(folder / f"{task.local_name}_{subject}.yaml", text)
            group = {"group": task.local_name, "task": task.subtask_names(),
                     "aggregate_metric_list": [{"metric": task.metric, "weight_by_size": True}],
                     "metadata": {"version": 2}}
            write_text_atomic(folder / f"{task.local_name}.yaml",
                              yaml.safe_dump(group, sort_keys=False))
        out.append(task.local_name)
    return out
