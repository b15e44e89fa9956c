"""The study spec: a YAML file that writes down a whole grid of experiments.

```yaml
name: my-study
models: [smollm2-135m]            # aliases, local folders, .gguf files or hub ids
dtype: float32                    # float32 | bfloat16 | float16
device: cpu                       # cpu, cuda, cuda:0, ...
seeds: [0]                        # each seed repeats every compressed experiment
ratios: [0.1, 0.3, 0.5]           # the methods' own ratios, in [0, 1)
methods:
  - name: prunenet                # a registered compression method
    options: {policy: random}     # its options (resolved: defaults filled in)
  - name: slicegpt
    calibration: {data: wikitext2:train, samples: 32, seq_len: 1024}
    models: [smollm2-135m]        # optional: only these models
    ratios: [0.1, 0.3]            # optional: instead of the study's ratios
recovery:                         # optional: LoRA recovery fine-tuning
  datasets: [alpaca:train]
  samples: [0, 16, 64]            # D in samples of seq_len tokens; 0 = no recovery
  seq_len: 1024
  options: {}                     # the recover stage's own settings
evaluations:                      # at least one
  intrinsic: {data: [wikitext2:test], seq_len: 1024, max_tokens: 16384, batch_size: 4}
  extrinsic: {tasks: [piqa, arc_easy], limit: 100, recovered: false}  # not on recovered models
  task_loss: {tasks: [piqa, arc_easy], limit: 100}  # task loss alone, where extrinsic is not
  speed: {options: {}}
plugins: [my_package.stages]      # optional: modules that register more stages
resources:                        # optional: per-stage Ray resources
  compress: {cpus: 4, gpus: 1}
design: {budget: 0.25, batch: 4}  # optional: an adaptive design (complaw.laws.design)
```

`load_spec` validates it with pydantic; every error names the key path and, where the value
must come from a list (keys, methods, datasets, dtypes), the allowed values.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from complaw.errors import ComplawError, ConfigError

SHIPPED = Path(__file__).parent / "specs"  # studies/ in the repository links here


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _checked(check: Callable[[], object]) -> None:
    """Run ``check``; its ComplawError becomes the ValueError pydantic reports at the key."""
    try:
        check()
    except ComplawError as exc:
        raise ValueError(str(exc)) from None


class CalibrationSpec(_Model):
    data: str
    samples: int | None = Field(None, ge=1)  # default: complaw.config.Compression's
    seq_len: int | None = Field(None, ge=1)


class MethodSpec(_Model):
    name: str
    options: dict[str, Any] = {}
    calibration: CalibrationSpec | None = None
    models: list[str] | None = None
    ratios: list[float] | None = None


class RecoverySpec(_Model):
    datasets: list[str] = []
    samples: list[int] = [0]
    seq_len: int = Field(1024, ge=1)
    options: dict[str, Any] = {}

    @field_validator("samples")
    @classmethod
    def _non_negative(cls, value: list[int]) -> list[int]:
        if any(n < 0 for n in value):
            raise ValueError("samples must be >= 0 (0 = no recovery)")
        return value


class EvaluationSpec(_Model):
    """Where an evaluation runs, and its settings. `recovered: false` evaluates the base and the
    compressed models only, not the recovered ones (e.g. a costly zero-shot run on a CPU); a
    list of recovery sizes (in samples, as `recovery.samples`) evaluates the recovered models
    of those sizes only (e.g. `[16]`: zero-shot at D = 0 and the largest D); `ratios` keeps it
    to the compressed models of those ratios, `models` to those models. Every other key is a
    field of the evaluation's own config (`complaw.config.EVALUATIONS[kind]`: its defaults and
    types, checked by it; a plugin's stage takes `options`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: ClassVar[str | None] = None
    recovered: bool | list[int] = True
    ratios: list[float] | None = None
    models: list[str] | None = None

    @field_validator("recovered")
    @classmethod
    def _sizes(cls, value: bool | list[int]) -> bool | list[int]:
        if isinstance(value, list) and any(n < 1 for n in value):
            raise ValueError("recovered: recovery sizes must be >= 1 sample (0 = no recovery)")
        return value

    @model_validator(mode="after")
    def _settings(self) -> EvaluationSpec:
        if self.kind is not None:
            from complaw.config import EVALUATIONS

            _checked(lambda: EVALUATIONS[self.kind].from_dict(self.model_extra or {}))
        return self


class IntrinsicSpec(EvaluationSpec):
    kind: ClassVar[str | None] = "intrinsic"


class ExtrinsicSpec(EvaluationSpec):
    kind: ClassVar[str | None] = "extrinsic"


class TaskLossSpec(EvaluationSpec):
    """Task loss alone (complaw.config.TaskLoss): the gold continuation of each document, one
    request per document; where a zero-shot evaluation with the same tasks and limit runs on a
    model, it gives the task loss and this one is skipped there."""

    kind: ClassVar[str | None] = "task_loss"


class SpeedSpec(EvaluationSpec):
    kind: ClassVar[str | None] = "speed"


class EvaluationsSpec(BaseModel):
    """The built-in evaluations; other keys name evaluation stages registered by plugins,
    each with {options: {...}}."""

    model_config = ConfigDict(extra="allow", frozen=True)
    intrinsic: IntrinsicSpec | None = None
    extrinsic: ExtrinsicSpec | None = None
    task_loss: TaskLossSpec | None = None
    speed: SpeedSpec | None = None


class ResourceSpec(_Model):
    cpus: float = Field(1, ge=0)
    gpus: float = Field(0, ge=0)


class DesignSpec(_Model):
    """An adaptive design (complaw.laws.design): run only the experiments that tell most about
    the law per unit of cost, up to a budget. `complaw run --design adaptive` sets it."""

    kind: Literal["adaptive"] = "adaptive"
    budget: float | str = 0.25      # a fraction of the grid's cost, or 900s / 30m / 2h
    batch: int = Field(4, ge=1)     # experiments chosen per step (run together, e.g. on Ray)
    ci_width: float | None = Field(None, gt=0)  # stop once every 95 % CI is narrower
    metric: str = "loss"            # a registered metric (complaw.laws.metrics)
    form: str | None = None         # the law form (default: the metric's; with a prior, its
                                    # pooled one: plateau for loss)
    by: list[str] | None = None     # one law per group (default: model and method, where the
                                    # grid has several; [] for one law over everything)
    prior: str | None = None        # a finished study folder: its models' pooled law is the
                                    # prior of this study's (new) models (complaw.laws.prior)
    share: list[str] | None = None  # with a prior: the coefficients shared across models
                                    # (default: the form's declared ones)
    trend: list[str] = []           # with a prior: per-model coefficients whose mean follows
                                    # model size (N0; complaw.laws.pooling)

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: float | str) -> float | str:
        from complaw.laws.design import Budget

        _checked(lambda: Budget.parse(value))
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        from complaw.laws.metrics import get_metric

        _checked(lambda: get_metric(value))
        return value


class Spec(_Model):
    name: str = "study"
    models: list[str] = Field(min_length=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"
    seeds: list[int] = Field([0], min_length=1)
    ratios: list[float] = []
    methods: list[MethodSpec] = []
    recovery: RecoverySpec | None = None
    evaluations: EvaluationsSpec
    plugins: list[str] = []
    resources: dict[str, ResourceSpec] = {}
    design: DesignSpec | None = None

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        bad = [r for r in value if not 0.0 <= r < 1.0]
        if bad:
            raise ValueError(f"ratios must be in [0, 1); got {bad} (give 0.3, not 30)")
        return value

    def evaluation_options(self) -> dict[str, dict[str, Any]]:
        """Evaluation kind -> its settings, built-in and plugin ones alike."""
        ev = self.evaluations
        builtin = {"intrinsic": ev.intrinsic, "extrinsic": ev.extrinsic,
                   "task_loss": ev.task_loss, "speed": ev.speed}
        out = {k: v.model_dump() for k, v in builtin.items() if v is not None}
        for kind, value in (self.evaluations.model_extra or {}).items():
            out[kind] = value if isinstance(value, dict) else {}
        return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation (Optional[X], list[X], dict[str, X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _allowed_keys(loc: tuple[Any, ...]) -> list[str] | None:
    """The keys allowed at the mapping that holds `loc[-1]`."""
    cls: type[BaseModel] | None = Spec
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        field = cls.model_fields.get(part)
        if field is None:  # a free key, e.g. a stage name under resources
            continue
        cls = _model_in(field.annotation)
    return None if cls is None else list(cls.model_fields)


def key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error: dict[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = key_path(loc)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        return f"{path}: unknown key; allowed keys: {', '.join(allowed or [])}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    return f"{path}: {error['msg']} (got {error.get('input')!r})"


def import_plugins(modules: list[str]) -> None:
    """Import the modules that register extra stages or methods."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"plugins: cannot import {name!r} ({exc}); check the module name and PYTHONPATH"
            ) from None


def parse_spec(data: Any, source: str = "spec") -> Spec:
    """Validate a spec given as plain data (a dict from YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a spec is a mapping of keys (models, methods, ...), "
                          f"got {type(data).__name__}")
    plugins = data.get("plugins") or []
    if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        import_plugins(plugins)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        lines = [_message(e) for e in exc.errors()]
        raise ConfigError(f"{source} is invalid: " + "; ".join(lines)) from None


def parse_design(data: dict[str, Any]) -> DesignSpec:
    """Validate design settings (a spec's ``design:``, with command-line flags on top)."""
    try:
        return DesignSpec.model_validate(data)
    except ValidationError as exc:
        lines = [_message({**e, "loc": ("design", *e["loc"])}) for e in exc.errors()]
        raise ConfigError("; ".join(lines)) from None


def shipped_specs() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def spec_path(text: str | Path | None) -> Path:
    """A spec file: the path given, or a shipped spec by name (default: quickstart)."""
    if text is None:
        text = "quickstart"
    path = Path(text)
    if path.is_file():
        return path
    shipped = SHIPPED / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"spec {str(text)!r} is not a file nor a shipped spec ({', '.join(shipped_specs())}); "
        "give a YAML file"
    )


def load_spec(text: str | Path | None = None) -> Spec:
    """Read and validate a spec file (see `spec_path` for what `text` may be)."""
    path = spec_path(text)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read spec {str(path)!r}: {exc}") from None
    return parse_spec(data, str(path))


def checked(path: str, what: Any) -> Any:
    """Run `what()` and prefix a ComplawError's message with the spec's key path."""
    try:
        return what()
    except ComplawError as exc:
        raise ConfigError(f"{path}: {exc}") from None
