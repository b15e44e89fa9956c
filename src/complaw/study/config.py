"""Typed configuration: one frozen dataclass per stage slot and one per experiment.

An experiment is a chain over a base model: `compression` (or none), then `recovery` (or none),
then one evaluation (`eval`). Each config converts to a plain dict (`to_dict`, the form records
and checkpoint manifests keep) and back (`from_dict`). Identity is the content id (`config_id`)
of that dict *after* `resolve()` filled in every default, so `{}` and `{"policy": "random"}`
for PruneNet name the same experiment. The chain's prefixes name the intermediate checkpoints:
`chain_id(model, dtype, compression)` is the compressed checkpoint every recovery and
evaluation of it shares.

This module imports no torch; `resolve()` does (lazily), because it asks the method registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from complaw.errors import ConfigError
from complaw.study.records import config_id

DTYPES = ("float32", "bfloat16", "float16")


def _plain(value: Any) -> Any:
    """JSON-ready form: nested configs as dicts, tuples as lists, mappings with sorted keys."""
    if isinstance(value, StageConfig):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    """A hashable, immutable copy of a JSON-like value (lists become tuples)."""
    if isinstance(value, Mapping):
        return FrozenDict({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


class FrozenDict(dict):
    """A read-only dict (options of a stage), hashable so that configs are."""

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("stage options are read-only; use dataclasses.replace on the config")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(config_id(_plain(self)))

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (Ray) without calling __setitem__
        return (FrozenDict, (dict(self),))


@dataclass(frozen=True)
class StageConfig:
    """Base of every config: dict round trip and content id."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | tuple | Mapping) and not isinstance(value, FrozenDict):
                object.__setattr__(self, f.name, _frozen(value))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - set(getattr(cls, "derived", ())))
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; fields: "
                f"{', '.join(sorted(names))}"
            )
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def id(self) -> str:
        return config_id(self.to_dict())

    def resolve(self) -> StageConfig:
        """This config validated, with every default filled in (identity form)."""
        return self


def _canonical_data(ref: str, default_split: str = "test") -> str:
    from complaw.data import DataRef

    return DataRef.parse(ref, default_split).name


@dataclass(frozen=True)
class Compression(StageConfig):
    """Compress with a registered method at the method's own ratio."""

    method: str
    ratio: float
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    calibration: str | None = None  # DATASET:SPLIT, only for methods that read calibration
    calib_samples: int | None = None
    calib_seq_len: int | None = None

    def resolve(self) -> Compression:
        from complaw.compress import METHODS
        from complaw.compress.base import check_ratio

        method = METHODS.get(self.method)
        ratio = check_ratio(self.ratio)
        options = method.resolve_options(dict(self.options))
        if not method.needs_calibration:
            if self.calibration is not None:
                raise ConfigError(
                    f"method {self.method!r} reads no calibration data; remove calibration "
                    f"{self.calibration!r}"
                )
            return replace(self, ratio=ratio, options=options, calib_samples=None,
                           calib_seq_len=None)
        if self.calibration is None:
            raise ConfigError(
                f"method {self.method!r} needs calibration data; give calibration DATASET:SPLIT "
                "(e.g. wikitext2:train)"
            )
        from complaw.data import DataRef

        data = DataRef.parse(self.calibration, "train").require_not_test("calibration").name
        samples = 32 if self.calib_samples is None else self.calib_samples
        seq_len = 1024 if self.calib_seq_len is None else self.calib_seq_len
        for name, value in (("calib_samples", samples), ("calib_seq_len", seq_len)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        return replace(self, ratio=ratio, options=options, calibration=data,
                       calib_samples=samples, calib_seq_len=seq_len)


@dataclass(frozen=True)
class Recovery(StageConfig):
    """LoRA recovery fine-tuning on `samples` blocks of `seq_len` tokens of `dataset` (its train
    split). `options` are the recovery stage's own settings (rank, learning rate, ...), resolved
    by the registered `recover` stage. D = 0 is no Recovery at all (None in the experiment)."""

    dataset: str
    samples: int
    seq_len: int = 1024
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    derived: ClassVar[tuple[str, ...]] = ("tokens",)

    @property
    def tokens(self) -> int:
        """D in tokens (an upper bound: a sample holds up to seq_len tokens)."""
        return self.samples * self.seq_len

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "tokens": self.tokens}

    def resolve(self) -> Recovery:
        if self.samples < 1 or self.seq_len < 1:
            raise ConfigError(
                f"recovery needs samples >= 1 and seq_len >= 1, got {self.samples} x "
                f"{self.seq_len} (D = 0 means no recovery: leave it out)"
            )
        data = _canonical_data(self.dataset, "train")
        if data.endswith(":test"):
            raise ConfigError(f"recovery data {data} is a test split; use the train split")
        return replace(self, dataset=data)


@dataclass(frozen=True)
class Evaluation(StageConfig):
    """Base of evaluation configs; `kind` names the evaluation stage that runs it."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **super().to_dict()}


@dataclass(frozen=True)
class Intrinsic(Evaluation):
    """Token cross-entropy on each of `data` (test splits), in blocks of `seq_len` tokens, the
    first `max_tokens` of each (all if None)."""

    kind: ClassVar[str] = "intrinsic"
    data: tuple[str, ...] = ("wikitext2:test",)
    seq_len: int = 1024
    max_tokens: int | None = None
    batch_size: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            object.__setattr__(self, "data", (self.data,))
        super().__post_init__()

    def resolve(self) -> Intrinsic:
        from complaw.data.blocks import check_budget

        check_budget(self.seq_len, self.max_tokens)
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}; pass e.g. 4")
        if not self.data:
            raise ConfigError("intrinsic evaluation needs at least one dataset (data)")
        return replace(self, data=tuple(sorted({_canonical_data(d) for d in self.data})))


@dataclass(frozen=True)
class Extrinsic(Evaluation):
    """Zero-shot accuracy on lm-eval `tasks`, the first `limit` examples of each (all if None);
    `options` are the extrinsic stage's own settings, resolved by that stage."""

    kind: ClassVar[str] = "extrinsic"
    tasks: tuple[str, ...] = ()
    limit: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Extrinsic:
        if not self.tasks:
            raise ConfigError("extrinsic evaluation needs at least one task (tasks)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"extrinsic limit={self.limit} must be >= 1 (or null for all)")
        return replace(self, tasks=tuple(sorted(set(self.tasks))))


@dataclass(frozen=True)
class Speed(Evaluation):
    """Latency / throughput / memory on `device` (part of the identity: speed depends on it);
    `options` are the speed stage's own settings, resolved by that stage."""

    kind: ClassVar[str] = "speed"
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Custom(Evaluation):
    """An evaluation of a stage registered by a plugin: its options as given."""

    kind: str = "custom"  # type: ignore[misc]
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return StageConfig.to_dict(self)


EVALUATIONS: dict[str, type[Evaluation]] = {c.kind: c for c in (Intrinsic, Extrinsic, Speed)}


def evaluation_from_dict(data: Mapping[str, Any]) -> Evaluation:
    """The evaluation config a dict describes (its `kind` picks the class)."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind in EVALUATIONS:
        return EVALUATIONS[kind].from_dict(data)
    if kind is None:
        raise ConfigError(f"an evaluation needs a kind ({', '.join(EVALUATIONS)} or a plugin's)")
    return Custom(kind=kind, options=data.get("options", {}))


@dataclass(frozen=True)
class Experiment(StageConfig):
    """One experiment: model (alias, folder, .gguf or hub id) in `dtype`, optionally compressed
    and recovered, then evaluated once. `to_dict()` is the `config` of its record."""

    model: str
    eval: Evaluation
    dtype: str = "float32"
    compression: Compression | None = None
    recovery: Recovery | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.recovery is not None and self.compression is None:
            raise ConfigError("recovery needs a compressed model (compression is missing)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dtype": self.dtype,
            "compression": _plain(self.compression),
            "recovery": _plain(self.recovery),
            "eval": self.eval.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        comp, rec = data.get("compression"), data.get("recovery")
        return cls(
            model=data["model"],
            dtype=data.get("dtype", "float32"),
            compression=None if comp is None else Compression.from_dict(comp),
            recovery=None if rec is None else Recovery.from_dict(rec),
            eval=evaluation_from_dict(data["eval"]),
        )

    def resolve(self) -> Experiment:
        return replace(
            self,
            compression=None if self.compression is None else self.compression.resolve(),
            recovery=None if self.recovery is None else self.recovery.resolve(),
            eval=self.eval.resolve(),
        )


def chain(model: str, dtype: str, compression: Compression | None = None,
          recovery: Recovery | None = None) -> dict[str, Any]:
    """The config of an intermediate checkpoint: the experiment's prefix up to a stage."""
    out: dict[str, Any] = {"model": model, "dtype": dtype, "compression": _plain(compression)}
    if recovery is not None:
        out["recovery"] = recovery.to_dict()
    return out


def chain_id(model: str, dtype: str, compression: Compression | None = None,
             recovery: Recovery | None = None) -> str:
    """Content id of the checkpoint `chain(...)` describes."""
    return config_id(chain(model, dtype, compression, recovery))
