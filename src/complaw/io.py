"""Atomic writes: a crash never leaves a half-written file or folder behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from complaw.errors import RecordError


def ensure_dir(path: Path | str) -> Path:
    """Create `path` as a folder (with parents) or fail clearly if a file is in the way."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise RecordError(f"output location {str(path)!r} cannot be a folder: {part} is a file")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder and a rename."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path: Path | str, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def check_target(target: Path | str, overwrite: bool = False) -> Path:
    """Fail early unless `target` can become a new output folder (see `atomic_folder`)."""
    target = Path(target)
    ensure_dir(target.parent)
    if target.exists() and not target.is_dir():
        raise RecordError(f"output folder {str(target)!r} is a file; choose another path")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise RecordError(
            f"output folder {str(target)!r} is not empty; choose a new path or pass --overwrite"
        )
    return target


@contextlib.contextmanager
def atomic_folder(target: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it becomes `target`, on error it vanishes.

    An existing non-empty `target` is an error unless `overwrite` is set.
    """
    target = check_target(target, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():  # swap, so that the old folder is gone only once the new one is in
            old = tmp.with_name(tmp.name + ".old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
