"""Typed configuration: one frozen dataclass per stage slot and one per experiment.

An experiment is a chain over a base model: `compression` (or none), then `recovery` (or none),
then one evaluation (`eval`). Each config converts to a plain dict (`to_dict`, the form records
and checkpoint manifests keep) and back (`from_dict`). Identity is the content id (`config_id`)
of its `identity()`, that dict *after* `resolve()` filled in every default (so `{}` and
`{"policy": "random"}` for PruneNet name the same experiment) and without the settings that
change how it runs but not what it measures (each config's `execution`: an evaluation's batch
size, LoRA's gradient checkpointing; they stay in `to_dict()`, so records keep them). The
chain's prefixes name the intermediate checkpoints: `chain_id(model, dtype, compression)` is
the compressed checkpoint every recovery and evaluation of it shares.

Each stage has this one config type, used by the library, the CLI and the study. A stage's
own settings (a method's options, LoRA's, lm-eval's, the speed shapes) are its `options`, checked
and filled in by `resolve()` through the options dataclass of the library that runs it.

This module imports no torch; `resolve()` does (lazily), because it asks the libraries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from complaw.errors import ConfigError
from complaw.projections import PROJECTIONS
from complaw.settings import Settings, check_fields

DTYPES = ("float32", "bfloat16", "float16")


def config_id(config: dict[str, Any]) -> str:
    """Content address of a configuration: sha256 of its canonical JSON, 16 hex digits."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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

    execution: ClassVar[tuple[str, ...]] = ()
    """Execution-only settings, among the fields and the `options`: left out of the id."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | tuple | Mapping) and not isinstance(value, FrozenDict):
                object.__setattr__(self, f.name, _frozen(value))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageConfig:
        return check_fields(cls, data, "field", cls.__name__)

    def identity(self) -> dict[str, Any]:
        """`to_dict()` without the execution-only settings: what the id hashes."""
        data = {k: v for k, v in self.to_dict().items() if k not in self.execution}
        if isinstance(data.get("options"), dict):
            data["options"] = {k: v for k, v in data["options"].items()
                               if k not in self.execution}
        return data

    @property
    def id(self) -> str:
        return config_id(self.identity())

    def resolve(self) -> StageConfig:
        """This config validated, with every default filled in (identity form)."""
        return self


@dataclass(frozen=True)
class ExtrinsicOptions(Settings):
    """The extrinsic stage's own options (complaw.config.Extrinsic keeps them beside
    its tasks and limit): `batch_size` requests per forward pass and `num_fewshot` examples
    (0 = zero-shot)."""

    what: ClassVar[str] = "extrinsic option"
    batch_size: int = field(default=8, metadata={"help": "Requests per forward pass."})
    num_fewshot: int = field(default=0, metadata={"help": "Few-shot examples (0 = zero-shot)."})

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}; pass e.g. 8")
        if self.num_fewshot < 0:
            raise ConfigError(f"num_fewshot must be >= 0, got {self.num_fewshot}")


@dataclass(frozen=True)
class SpeedOptions(Settings):
    """The speed stage's options: fixed shapes and repetitions of a measurement
    (complaw.evaluate.speed)."""

    what: ClassVar[str] = "speed option"
    batch_size: int = field(default=1, metadata={"help": "Sequences per forward pass."})
    prompt_len: int = field(default=256, metadata={"help": "Prompt tokens (prefill)."})
    new_tokens: int = field(default=32, metadata={
        "help": "Greedy tokens decoded from the KV cache."})
    repeats: int = field(default=5, metadata={
        "help": "Timed repeats (median, min and max are kept)."})
    warmup: int = field(default=1, metadata={"help": "Untimed repeats first."})
    threads: int | None = field(default=None, metadata={
        "help": "Pin torch's CPU threads (default: torch's choice, which is recorded)."})

    def __post_init__(self) -> None:
        for name in ("batch_size", "prompt_len", "new_tokens", "repeats"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        if self.threads is not None and self.threads <= 0:
            raise ConfigError(f"threads must be positive, got {self.threads}; omit it for "
                              "torch's default")


@dataclass(frozen=True)
class LoraOptions(Settings):
    """The recovery stage's own options: LoRA and its optimiser (complaw.recover; see
    docs/recover.md). `Recovery` keeps them beside the data, the budget and the seed."""

    what: ClassVar[str] = "recovery option"
    rank: int = field(default=16, metadata={"help": "LoRA rank r."})
    alpha: float = field(default=32.0, metadata={"help": "LoRA scaling alpha (scale alpha/r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lr: float = field(default=2e-4, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup: float = field(default=0.03, metadata={
        "help": "Warm-up as a fraction of the steps (rounded to whole steps)."})
    scheduler: str = field(default="linear", metadata={
        "help": "Learning-rate decay after warm-up: a transformers scheduler name "
                "(linear, cosine, constant_with_warmup, ...)."})
    batch_size: int = field(default=4, metadata={"help": "Blocks per optimizer step."})
    targets: tuple[str, ...] = field(default=PROJECTIONS, metadata={
        "help": "Adapter roles LoRA adapts, comma-separated (default: every attention and MLP "
                "projection)."})
    include_shortcuts: bool = field(default=False, metadata={
        "help": "Also adapt the other linear maps inside decoder layers (SliceGPT's shortcut "
                "matrices)."})
    grad_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass (less memory, slower)."})
    log_every: int = field(default=10, metadata={
        "help": "Record the mean train loss every this many steps."})

    def __post_init__(self) -> None:
        from transformers import SchedulerType  # imports torch: only when options are built

        object.__setattr__(self, "targets", tuple(self.targets))
        for name in ("rank", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0 or self.alpha <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr={self.lr} and alpha={self.alpha} must be > 0, weight_decay="
                              f"{self.weight_decay} >= 0")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.warmup <= 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) and warmup="
                              f"{self.warmup} (a fraction of the steps) in [0, 1]")
        if self.scheduler not in {s.value for s in SchedulerType}:
            known = ", ".join(s.value for s in SchedulerType)
            raise ConfigError(f"unknown scheduler {self.scheduler!r}; known: {known}")
        unknown = sorted(set(self.targets) - set(PROJECTIONS))
        if unknown or not self.targets:
            raise ConfigError(f"LoRA targets {list(self.targets)} must be a non-empty subset of "
                              f"{', '.join(PROJECTIONS)}")


def _canonical_data(ref: str, default_split: str = "test") -> str:
    from complaw.data import DataRef

    return DataRef.parse(ref, default_split).name


CALIB_SAMPLES, CALIB_SEQ_LEN = 32, 1024
"""A calibrated method's calibration data by default: 32 samples of 1,024 tokens."""


@dataclass(frozen=True)
class Compression(StageConfig):
    """Compress with a registered method at the method's own ratio. A method's `batch_size`
    option, where it has one, is the calibration blocks per forward pass (execution only)."""

    execution: ClassVar[tuple[str, ...]] = ("batch_size",)

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
        samples = CALIB_SAMPLES if self.calib_samples is None else self.calib_samples
        seq_len = CALIB_SEQ_LEN if self.calib_seq_len is None else self.calib_seq_len
        for name, value in (("calib_samples", samples), ("calib_seq_len", seq_len)):
            if value < 1:
                raise ConfigError(f"{name}={value} must be >= 1")
        return replace(self, ratio=ratio, options=options, calibration=data,
                       calib_samples=samples, calib_seq_len=seq_len)


@dataclass(frozen=True)
class Recovery(StageConfig):
    """LoRA recovery fine-tuning on a budget of D = `tokens` tokens of `dataset` (its train
    split), packed in blocks of `seq_len` tokens; given as `samples` blocks, D = samples ·
    seq_len (an upper bound: a sample holds up to seq_len tokens). `options` are LoraOptions.
    In a study, D = 0 is no Recovery at all (None in the experiment); `complaw recover` writes
    its input unchanged for it. The LoRA options in `execution` say how a run goes, not what it
    trains (a recovered checkpoint's manifest keeps them among its run statistics)."""

    execution: ClassVar[tuple[str, ...]] = ("grad_checkpointing", "log_every")

    dataset: str = field(default="alpaca:train", metadata={
        "help": "Training data NAME[:SPLIT] (default split: train); test splits are refused."})
    samples: int | None = field(default=None, metadata={
        "help": "Training budget in sequences of seq_len tokens (instead of tokens)."})
    seq_len: int = field(default=1024, metadata={"help": "Tokens per packed training block."})
    seed: int = field(default=0, metadata={"help": "Seed of the LoRA init and dropout."})
    options: Mapping[str, Any] = field(default_factory=dict)
    tokens: int | None = field(default=None, metadata={
        "help": "Training budget D in tokens (0 = no recovery: the input is written unchanged)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples is not None:
            if self.tokens not in (None, self.samples * self.seq_len):
                raise ConfigError(
                    f"give one budget: tokens (--tokens D) or samples (--samples N, D = N · "
                    f"seq_len); got tokens={self.tokens}, samples={self.samples}")
            object.__setattr__(self, "tokens", self.samples * self.seq_len)

    @property
    def lora(self) -> LoraOptions:
        """The options, typed (validated with their defaults)."""
        return LoraOptions.from_dict(dict(self.options))

    def resolve(self) -> Recovery:
        """Validated, with the data as `name:split` and every option filled in."""
        from complaw.data import DataRef

        if self.tokens is None:
            raise ConfigError("give a budget: tokens (--tokens D) or samples (--samples N)")
        for name in ("tokens", "samples"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name}={value} is negative; the budget D is >= 0 "
                                  "(0 = no recovery)")
        if self.tokens == 1:
            raise ConfigError("a budget of 1 token leaves no token to predict; use 0 or >= 2")
        if self.seq_len < 2:
            raise ConfigError(f"seq_len={self.seq_len} must be >= 2 (a block predicts seq_len-1)")
        data = DataRef.parse(self.dataset, "train").require_not_test("recovery fine-tuning")
        return replace(self, dataset=data.name, options=self.lora.to_dict())


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
    execution: ClassVar[tuple[str, ...]] = ("batch_size",)
    data: tuple[str, ...] = field(default=("wikitext2:test",), metadata={
        "help": "Test data NAME[:SPLIT] (default split: test), e.g. wikitext2 or ptb:test."})
    seq_len: int = field(default=1024, metadata={"help": "Tokens per non-overlapping block."})
    max_tokens: int | None = field(default=None, metadata={
        "help": "Use only the first N tokens of each dataset (default: all)."})
    batch_size: int = field(default=4, metadata={"help": "Blocks per forward pass."})

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
    `options` are ExtrinsicOptions (their batch_size is execution only)."""

    kind: ClassVar[str] = "extrinsic"
    execution: ClassVar[tuple[str, ...]] = ("batch_size",)
    tasks: tuple[str, ...] = ()
    limit: int | None = field(default=None, metadata={
        "help": "With --tasks: at most N documents per task (per MMLU subject; default: all)."})
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Extrinsic:
        from complaw.evaluate.tasks import parse_tasks

        if not self.tasks:
            raise ConfigError("extrinsic evaluation needs at least one task (tasks)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be a positive number of documents, got {self.limit}; "
                              "omit it (null in a spec) to use every document")
        options = ExtrinsicOptions.from_dict(dict(self.options)).to_dict()
        return replace(self, tasks=tuple(sorted(parse_tasks(self.tasks))), options=options)


@dataclass(frozen=True)
class TaskLoss(Extrinsic):
    """Task loss alone on lm-eval `tasks`: each document's correct continuation is scored, one
    request per document (no accuracy), for grid points where accuracy itself is not needed;
    `options` are ExtrinsicOptions."""

    kind: ClassVar[str] = "task_loss"


@dataclass(frozen=True)
class Speed(Evaluation):
    """Latency / throughput / memory on `device`; `options` are the speed stage's own settings,
    resolved by that stage. All are part of the identity: the device, the thread count and the
    batch shape are what a speed measurement measures."""

    kind: ClassVar[str] = "speed"
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Speed:
        return replace(self, options=SpeedOptions.from_dict(dict(self.options)).to_dict())


@dataclass(frozen=True)
class Custom(Evaluation):
    """An evaluation of a stage registered by a plugin: its options as given."""

    kind: str = "custom"  # type: ignore[misc]
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return StageConfig.to_dict(self)


EVALUATIONS: dict[str, type[Evaluation]] = {
    c.kind: c for c in (Intrinsic, Extrinsic, TaskLoss, Speed)}


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
    and recovered, then evaluated once. `to_dict()` is the `config` of its record. `baseline`
    names a model that a speed measurement times alongside, where it is not the study's own
    convention (a compressed model against its base model)."""

    model: str
    eval: Evaluation
    dtype: str = "float32"
    compression: Compression | None = None
    recovery: Recovery | None = None
    baseline: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")

    def _dict(self, identity: bool) -> dict[str, Any]:
        return {
            **_chain(self.model, self.dtype, self.compression, None, identity),
            "recovery": _part(self.recovery, identity),
            "eval": _part(self.eval, identity),
            **({} if self.baseline is None else {"baseline": self.baseline}),
        }

    def to_dict(self) -> dict[str, Any]:
        return self._dict(identity=False)

    def identity(self) -> dict[str, Any]:
        return self._dict(identity=True)

    @property
    def is_base(self) -> bool:
        """Neither compressed nor recovered: the model whose values are a law's L0."""
        return self.compression is None and self.recovery is None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        comp, rec = data.get("compression"), data.get("recovery")
        return cls(
            model=data["model"],
            dtype=data.get("dtype", "float32"),
            compression=None if comp is None else Compression.from_dict(comp),
            recovery=None if rec is None else Recovery.from_dict(rec),
            eval=evaluation_from_dict(data["eval"]),
            baseline=data.get("baseline"),
        )

    def resolve(self) -> Experiment:
        return replace(
            self,
            compression=None if self.compression is None else self.compression.resolve(),
            recovery=None if self.recovery is None else self.recovery.resolve(),
            eval=self.eval.resolve(),
        )


def _part(config: StageConfig | None, identity: bool) -> dict[str, Any] | None:
    if config is None:
        return None
    return config.identity() if identity else config.to_dict()


def _chain(model: str, dtype: str, compression: Compression | None,
           recovery: Recovery | None, identity: bool) -> dict[str, Any]:
    out = {"model": model, "dtype": dtype, "compression": _part(compression, identity)}
    if recovery is not None:
        out["recovery"] = _part(recovery, identity)
    return out


def chain(model: str, dtype: str, compression: Compression | None = None,
          recovery: Recovery | None = None) -> dict[str, Any]:
    """The config of an intermediate checkpoint: the experiment's prefix up to a stage."""
    return _chain(model, dtype, compression, recovery, identity=False)


def chain_id(model: str, dtype: str, compression: Compression | None = None,
             recovery: Recovery | None = None) -> str:
    """Content id of the checkpoint `chain(...)` describes (without execution-only settings)."""
    return config_id(_chain(model, dtype, compression, recovery, identity=True))
