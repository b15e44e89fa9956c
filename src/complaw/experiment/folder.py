"""`StudyFolder`: the one place that knows the layout of a study folder (the unit of resumption
and of reporting; on a cluster it must be on a filesystem every worker sees):

    STUDY/spec.yaml                the spec the folder was run with
    STUDY/records/<id>.json        one record per experiment (id = the experiment's content id)
    STUDY/checkpoints/<id>/        one folder per checkpoint stage execution (content id),
                                   written atomically; a half-written one is a hidden
                                   `.<id>.*.tmp` folder, never taken as done
    STUDY/log.jsonl                one line per stage execution the runner saw finish
    STUDY/report/                  the report (`complaw report`)
    STUDY/design.json              an adaptive study's steps and held-out error against cost
                                   (for the report; the design itself is rebuilt from records)

A plain folder of record files (what `complaw evaluate --out DIR` writes) is read as a study
folder without spec, checkpoints or log: its records are the folder itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from complaw.errors import RecordError
from complaw.io import ensure_dir, write_json_atomic, write_text_atomic


class StudyFolder:
    SPEC = "spec.yaml"
    RECORDS = "records"
    CHECKPOINTS = "checkpoints"
    LOG = "log.jsonl"
    REPORT = "report"
    DESIGN = "design.json"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / self.CHECKPOINTS
        self.log = self.root / self.LOG
        self.spec = self.root / self.SPEC
        self.report = self.root / self.REPORT
        self.design = self.root / self.DESIGN

    @property
    def records(self) -> Path:
        """The folder of record files: `records/`, or the root for a plain folder of records."""
        inner = self.root / self.RECORDS
        if inner.is_dir() or not self.root.is_dir() or not any(self.root.glob("*.json")):
            return inner
        return self.root

    def require(self) -> StudyFolder:
        """This folder, or a RecordError when it does not exist."""
        if not self.root.is_dir():
            raise RecordError(f"study folder {str(self.root)!r} does not exist; give the --out "
                              "folder of `complaw run` or a folder of records")
        return self

    def create(self) -> StudyFolder:
        ensure_dir(self.root / self.RECORDS)
        ensure_dir(self.checkpoints)
        return self

    def record_path(self, ident: str) -> Path:
        return self.records / f"{ident}.json"

    def checkpoint_path(self, ident: str) -> Path:
        return self.checkpoints / ident

    def clean_partial(self) -> list[Path]:
        """Remove the temp folders/files of interrupted writes; returns what was removed."""
        removed = []
        for folder in (self.checkpoints, self.records):
            for path in folder.glob(".*.tmp"):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
                removed.append(path)
        return removed

    def append_log(self, entry: dict[str, Any]) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        """The log's entries (none when absent); lines that do not parse are skipped."""
        if not self.log.is_file():
            return []
        entries = []
        for line in self.log.read_text("utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "stage" in entry:
                entries.append(entry)
        return entries

    def write_spec(self, text: str) -> None:
        write_text_atomic(self.spec, text)

    def write_design(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.design, summary)

    def read_design(self) -> dict[str, Any] | None:
        """The adaptive design's summary (None when the study has none or it is damaged)."""
        try:
            return json.loads(self.design.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def spec_text(self) -> str | None:
        """The spec as written (None when the folder has none)."""
        return self.spec.read_text("utf-8") if self.spec.is_file() else None
