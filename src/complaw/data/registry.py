"""Named datasets: where their splits live (data dir first, then the hub) and how to read them.

Data directory layout (that of ../shared/datasets): `DATA_DIR/<name>/<file>`, with each split's
files under their canonical names (`ptb/ptb.train.txt`, `wikitext2/wiki.train.tokens`,
`wikitext2/test.txt`, `alpaca/alpaca_data.json` or the 5k sample `alpaca/alpaca_5000.json`, ...;
see each dataset's `files`). Any subset may be present. Adding a dataset is one `DATASETS.add(...)`.

Every split read names its *data variant* (`SplitText.variant`): the file and its sha256, or the
hub id, config and fingerprint. Records keep it, so that a law never mixes WikiText-2 raw with the
tokenised v1, or the Alpaca 5k sample with the full 52k.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from complaw.errors import DataError
from complaw.registry import Registry

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "valid": "validation", "val": "validation",
                 "validation": "validation", "dev": "validation", "test": "test"}


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The data directory: the explicit argument, else $COMPLAW_DATA_DIR, else none."""
    value = explicit or os.environ.get("COMPLAW_DATA_DIR")
    return Path(value).expanduser() if value else None


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@dataclass(frozen=True)
class SplitText:
    """The text of one split and the exact data it came from."""

    text: str
    variant: dict[str, str]


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (memoised per path, size and modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def file_variant(path: Path, root: Path) -> dict[str, str]:
    return {"source": "file", "file": path.relative_to(root).as_posix(),
            "sha256": file_sha256(path)}


@dataclass(frozen=True)
class DatasetSpec:
    """A named text dataset.

    files: split -> candidate file names under DATA_DIR/<name>/ (first existing wins).
    read: turns a found file into the split's text.
    hub: split -> the split's SplitText from the Hugging Face hub.
    """

    name: str
    files: dict[str, tuple[str, ...]]
    read: Callable[[Path, str], str]
    hub: Callable[[str], SplitText]
    description: str = ""

    def text(self, split: str, directory: str | Path | None = None) -> str:
        return self.load(split, directory).text

    def load(self, split: str, directory: str | Path | None = None) -> SplitText:
        """The split's text and variant: from the data directory, else from the hub."""
        split = canonical_split(split)
        if split not in self.files:
            raise DataError(f"dataset {self.name!r} has no split {split!r}; "
                            f"it has {', '.join(self.files)}")
        root = data_dir(directory)
        looked = []
        if root is not None:
            for candidate in self.files[split]:
                path = root / self.name / candidate
                if path.is_file():
                    return SplitText(self.read(path, split), file_variant(path, root))
                looked.append(str(path))
        where = ", ".join(looked) if looked else "no data directory (none set)"
        if hub_offline():
            hub_note = "the hub is off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE)"
        else:
            try:
                return self.hub(split)
            except Exception as exc:  # any hub/network failure becomes one clear message
                hub_note = f"the hub failed ({type(exc).__name__}: {str(exc)[:120]})"
        raise DataError(
            f"dataset {self.name}:{split} not found: looked at {where}, and {hub_note}. "
            f"Fix: put the file at DATA_DIR/{self.name}/{self.files[split][0]} and pass "
            "--data-dir DATA_DIR or set COMPLAW_DATA_DIR"
        )


def canonical_split(split: str) -> str:
    try:
        return SPLIT_ALIASES[split.lower()]
    except KeyError:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLIT_ALIASES)}") from None


DATASETS: Registry[DatasetSpec] = Registry("dataset", DataError)


def _read_text(path: Path, split: str) -> str:
    """A text file with Windows line ends made plain (WikiText-2 raw test is staged as CRLF)."""
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


def _hub_rows(path: str, config: str | None, split: str):
    import datasets  # imported here: only the hub path needs it

    return datasets.load_dataset(path, config, split=split)


def _hub_split(path: str, config: str | None, split: str,
               render: Callable[[object], str]) -> SplitText:
    """A hub split rendered to text; its variant names the id, config and content fingerprint."""
    rows = _hub_rows(path, config, split)
    variant = {"source": "hub", "id": path, "config": config or "", "split": split,
               "fingerprint": str(getattr(rows, "_fingerprint", ""))}
    return SplitText(render(rows), variant)


DATASETS.add("wikitext2", DatasetSpec(
    name="wikitext2",
    # Raw files first; the tokenised v1 files (with <unk>) stand in where raw ones are missing.
    files={"train": ("wiki.train.raw", "train.txt", "wiki.train.tokens"),
           "validation": ("wiki.valid.raw", "valid.txt", "validation.txt", "wiki.valid.tokens"),
           "test": ("test.txt", "wiki.test.raw", "wiki.test.tokens")},
    read=_read_text,
    hub=lambda split: _hub_split("wikitext", "wikitext-2-raw-v1", split,
                                 lambda rows: "\n\n".join(rows["text"])),
    description="WikiText-2 (Merity et al. 2016); raw v1 articles joined by blank lines",
))

DATASETS.add("ptb", DatasetSpec(
    name="ptb",
    files={"train": ("ptb.train.txt", "train.txt"),
           "validation": ("ptb.valid.txt", "valid.txt", "validation.txt"),
           "test": ("ptb.test.txt", "test.txt")},
    read=_read_text,
    hub=lambda split: _hub_split("ptb-text-only/ptb_text_only", "penn_treebank", split,
                                 lambda rows: "\n".join(rows["sentence"])),
    description="Penn Treebank (Mikolov's LM version), one sentence per line",
))

# --- Alpaca: one file of 52k records, no official split -------------------------------------
ALPACA_SEED = 20240229
ALPACA_HELD_OUT = {"test": 2000, "validation": 1000}
ALPACA_PROMPT = (
    "Below is an instruction that describes a task{ctx}. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n{input_block}### Response:\n"
    "{output}"
)


def alpaca_text(record: dict) -> str:
    """One record in the standard Alpaca prompt format (with or without an input)."""
    has_input = bool(record.get("input"))
    return ALPACA_PROMPT.format(
        ctx=", paired with an input that provides further context" if has_input else "",
        instruction=record["instruction"],
        input_block=f"### Input:\n{record['input']}\n\n" if has_input else "",
        output=record["output"],
    )


def alpaca_split(records: list[dict], split: str) -> str:
    """Alpaca's fixed held-out split: a seeded permutation (seed ALPACA_SEED) of the file's
    records; the first 2,000 are `test`, the next 1,000 `validation`, the rest `train` (the full
    52k leaves 49,002 for train, the 5k sample 2,000)."""
    order = np.random.default_rng(ALPACA_SEED).permutation(len(records))
    n_test, n_val = ALPACA_HELD_OUT["test"], ALPACA_HELD_OUT["validation"]
    picks = {"test": order[:n_test], "validation": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}[split]
    return "\n\n".join(alpaca_text(records[i]) for i in sorted(picks))


def _read_alpaca(path: Path, split: str) -> str:
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    else:
        records = json.loads(raw)
    return alpaca_split(records, split)


# The full 52k file first; the 5k sample (a different variant, recorded as such) stands in.
ALPACA_FILES = ("alpaca_data.json", "alpaca_5000.json", "train.jsonl", "data.jsonl",
                "alpaca.json")
DATASETS.add("alpaca", DatasetSpec(
    name="alpaca",
    files={split: ALPACA_FILES for split in SPLITS},
    read=_read_alpaca,
    hub=lambda split: _hub_split("tatsu-lab/alpaca", None, "train",
                                 lambda rows: alpaca_split(list(rows), split)),
    description="Stanford Alpaca (52k, or a sample); held-out split fixed by a seeded permutation",
))
