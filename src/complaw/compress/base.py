"""The compression-method registry and the one entry point every caller uses."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import PretrainedConfig, PreTrainedModel

from complaw.compress.options import resolve
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter, adapter_for
from complaw.models.params import count_parameters, reduction
from complaw.registry import Registry


class CompressionMethod(ABC):
    """One structured compression method. Register an instance: `METHODS.add(name, Method())`.

    `compress_model` changes `model` in place (or returns a new model) and returns it. The ratio
    is the method's own ratio as the paper uses it; the achieved parameter reduction is counted
    by `compress` and recorded next to it.
    """

    needs_calibration: ClassVar[bool] = False
    # set by methods that rotate the residual stream (SliceGPT); `compress` refuses models whose
    # adapter says `rotation_invariant=False`
    needs_rotation_invariance: ClassVar[bool] = False
    options_class: ClassVar[type | None] = None  # the dataclass of the method's options

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """`options` validated, with every default filled in: the method's identity of an
        option set (`{}` and the defaults spelled out resolve to the same dict)."""
        if self.options_class is None:
            if options:
                raise CompressionError(
                    f"{type(self).__name__} takes no options; got {', '.join(sorted(options))}"
                )
            return {}
        return resolve(self.options_class, options, f"method {type(self).__name__.lower()}")

    @abstractmethod
    def compress_model(
        self,
        model: PreTrainedModel,
        adapter: ArchitectureAdapter,
        ratio: float,
        calibration: torch.Tensor | None,
        seed: int,
        **options: Any,
    ) -> PreTrainedModel: ...

    def min_calibration_tokens(self, config: PretrainedConfig) -> int:
        """The fewest calibration tokens the method can work from on a model of `config`."""
        return 0

    def save_model(self, model: PreTrainedModel, folder: Path) -> None:
        """Write the compressed model into `folder` (default: a plain HF checkpoint)."""
        model.save_pretrained(folder)

    def load_model(self, folder: Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
        """Load what `save_model` wrote (default: plain transformers)."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)


METHODS: Registry[CompressionMethod] = Registry("compression method", CompressionError)


@dataclass
class CompressionResult:
    model: PreTrainedModel
    method: str
    ratio: float
    seed: int
    options: dict[str, Any]
    params_before: dict[str, int]
    params_after: dict[str, int]
    seconds: float
    achieved: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.achieved = reduction(self.params_before, self.params_after)


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise CompressionError(f"compression ratio {ratio} is outside [0, 1); pass e.g. 0.3")
    return ratio


def check_supported(method: str, impl: CompressionMethod, adapter: ArchitectureAdapter) -> None:
    """Refuse, in one line, an architecture the method declares it cannot handle."""
    if impl.needs_rotation_invariance and not adapter.rotation_invariant:
        others = [name for name, m in METHODS.items() if not m.needs_rotation_invariance]
        raise CompressionError(
            f"method {method!r} cannot compress {adapter.name} models: {adapter.rotation_note}; "
            f"use one of: {', '.join(others)}"
        )


def check_feasible(method: str, config: PretrainedConfig, calibration_tokens: int | None) -> None:
    """Refuse, from the model's config alone (no weights loaded), what `compress` would refuse
    later: an architecture the method does not handle, or too little calibration data."""
    impl = METHODS.get(method)
    check_supported(method, impl, adapter_for(config))
    need = impl.min_calibration_tokens(config)
    if calibration_tokens is not None and calibration_tokens < need:
        raise CompressionError(
            f"method {method!r} needs at least {need} calibration tokens on this model "
            f"(hidden_size {config.hidden_size}), got {calibration_tokens} (samples × seq_len); "
            "give more calibration samples or a longer seq_len"
        )


def compress(
    model: PreTrainedModel,
    method: str,
    ratio: float,
    calibration: torch.Tensor | None = None,
    seed: int = 0,
    **options: Any,
) -> CompressionResult:
    """Compress `model` with the registered `method` at `ratio`, counting parameters exactly."""
    impl = METHODS.get(method)
    ratio = check_ratio(ratio)
    if impl.needs_calibration and calibration is None:
        raise CompressionError(
            f"method {method!r} needs calibration data; pass --calibration DATASET:SPLIT"
        )
    adapter = adapter_for(model)
    check_supported(method, impl, adapter)
    before = count_parameters(model, adapter)
    start = time.perf_counter()
    with torch.no_grad():
        out = impl.compress_model(model, adapter, ratio, calibration, seed, **options)
    seconds = time.perf_counter() - start
    return CompressionResult(
        model=out, method=method, ratio=ratio, seed=seed, options=options,
        params_before=before, params_after=count_parameters(out, adapter), seconds=seconds,
    )
