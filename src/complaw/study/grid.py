"""A spec expanded into experiments and the stage executions they need, deduplicated by id.

Every model's uncompressed baseline is part of the grid (each L needs its L0). A compressed
checkpoint is one node shared by every recovery and evaluation of it; a recovered checkpoint is
one node shared by every evaluation of it; D = 0 means no recovery node at all. An evaluation
whose stage does not read recovered checkpoints (speed: a merged LoRA leaves every shape, and so
the speed, of its input unchanged), or that the spec keeps off them (`recovered: false`), runs
on the base and compressed models only.

A compression its method cannot do on a model is refused from the model's config alone (an alias
or a folder's config.json; see `complaw.models.sources.known_config`), before anything runs:
SliceGPT on Gemma-3, or less calibration than the method needs. The grid leaves it and the
experiments on it out and counts it under the reason in `refused`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from complaw.config import (
    EVALUATIONS,
    Compression,
    Custom,
    Evaluation,
    Experiment,
    Extrinsic,
    Recovery,
    Speed,
    StageConfig,
    chain,
    chain_id,
    config_id,
)
from complaw.errors import CompressionError, ConfigError
from complaw.study.spec import Spec, checked
from complaw.study.stages import require

if TYPE_CHECKING:
    from transformers import PretrainedConfig


@dataclass(frozen=True)
class Node:
    """One stage execution: `step` is its stage's config, `experiment` the experiment whose
    record it makes (record nodes; None for checkpoints, whose id is their chain's); `parent` is
    the checkpoint node it reads, or None for the base model. `earlier` is its id before
    execution-only settings left ids (its whole config hashed): the name an older study folder
    holds its checkpoint under, and an older log names it by."""

    id: str
    stage: str
    produces: str
    step: StageConfig
    experiment: Experiment | None
    parent: str | None
    model: str
    dtype: str
    earlier: str


@dataclass
class Grid:
    experiments: dict[str, Experiment] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)  # parents before children
    # (model, why) -> how many compressions of that model were refused for that reason
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        """Stage executions per stage."""
        return dict(Counter(n.stage for n in self.nodes.values()))

    def records(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.produces == "record"]

    def checkpoints(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.produces == "checkpoint"]

    def ancestors(self, ident: str) -> list[str]:
        """The checkpoint nodes node ``ident`` reads, directly or not, nearest first."""
        out, parent = [], self.nodes[ident].parent
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out

    def aliases(self) -> dict[str, str]:
        """Each node's id, and its earlier id, -> its id."""
        return {**{n.earlier: i for i, n in self.nodes.items()}, **{i: i for i in self.nodes}}

    def consumers(self) -> dict[str, list[str]]:
        """Checkpoint id -> ids of the record nodes that read it, directly or not."""
        out: dict[str, list[str]] = {n.id: [] for n in self.checkpoints()}
        for node in self.records():
            for parent in self.ancestors(node.id):
                out[parent].append(node.id)
        return out


def _resolve(grid: Grid, stage: str, step: StageConfig, path: str) -> StageConfig:
    """The step resolved (defaults filled in); a registered stage also resolves its options."""
    step = checked(path, step.resolve)
    resolve_options = require(stage, path).resolve_options
    if resolve_options is not None and hasattr(step, "options"):
        step = replace(step, options=checked(path, lambda: resolve_options(step.options)))
    return step


@dataclass(frozen=True)
class Where:
    """Which models an evaluation runs on: `models` None (all) or the models (their base and
    compressed versions); of the compressed ones, `recovered` True, False or the recovery sizes
    in samples, and `ratios` None (all) or the ratios."""

    recovered: bool | list[int] = True
    ratios: tuple[float, ...] | None = None
    models: tuple[str, ...] | None = None

    def covers(self, model: str, comp: Compression | None, rec: Recovery | None) -> bool:
        if self.models is not None and model not in self.models:
            return False
        if comp is None:
            return True
        if self.ratios is not None and comp.ratio not in self.ratios:
            return False
        return rec is None or self.recovered is True or (
            isinstance(self.recovered, list) and rec.samples in self.recovered)


def _evaluations(grid: Grid, spec: Spec) -> list[tuple[Evaluation, Where]]:
    """Each evaluation of the spec, and the compressed models it runs on."""
    out: list[tuple[Evaluation, Where]] = []
    for kind, opts in spec.evaluation_options().items():
        recovered = opts.pop("recovered", True)
        ratios, models = opts.pop("ratios", None), opts.pop("models", None)
        unknown = sorted(set(models or []) - set(spec.models))
        if unknown:
            raise ConfigError(f"evaluations.{kind}.models: {', '.join(unknown)} not in models; "
                              f"allowed: {', '.join(spec.models)}")
        if kind == "speed":
            step: Evaluation = Speed(device=spec.device, **opts)
        elif kind in EVALUATIONS:
            step = EVALUATIONS[kind](**opts)
        else:
            step = Custom(kind=kind, options=opts.get("options", opts))
        step = _resolve(grid, kind, step, f"evaluations.{kind}")
        if "recover" not in require(kind, kind).inputs:
            recovered = False
        out.append((step, Where(recovered, None if ratios is None else tuple(ratios),
                                None if models is None else tuple(models))))
    if not out:
        raise ConfigError("evaluations: give at least one (intrinsic, extrinsic, speed)")
    return out


def _subsumed(evaluation: Evaluation, others: list[Evaluation]) -> bool:
    """A task-loss-only evaluation that a zero-shot evaluation of the same model already gives
    (same tasks, limit and options: the same requests, and more)."""
    return evaluation.kind == "task_loss" and any(
        o.kind == "extrinsic" and isinstance(o, Extrinsic) and isinstance(evaluation, Extrinsic)
        and set(evaluation.tasks) <= set(o.tasks) and o.limit == evaluation.limit
        and o.identity()["options"] == evaluation.identity()["options"] for o in others)


def _evaluate(grid: Grid, evaluations: list[tuple[Evaluation, Where]], model: str, dtype: str,
              comp: Compression | None, rec: Recovery | None, parent: str | None) -> None:
    """The experiments of the evaluations that run on this (model, compression, recovery),
    but those another of them already gives."""
    here = [e for e, where in evaluations if where.covers(model, comp, rec)]
    for evaluation in here:
        if not _subsumed(evaluation, here):
            _experiment(grid, model, dtype, comp, rec, evaluation, parent)


def _add(grid: Grid, node: Node) -> str:
    """Add `node` once (by id), checking that its stage can read what its parent makes."""
    source = "model" if node.parent is None else grid.nodes[node.parent].stage
    inputs = require(node.stage, node.stage).inputs
    if source not in inputs:
        raise ConfigError(f"stage {node.stage!r} cannot read the output of {source!r}; it "
                          f"reads {', '.join(inputs)} (drop the stages before it)")
    grid.nodes.setdefault(node.id, node)
    return node.id


def _checkpoint(grid: Grid, stage: str, step: StageConfig, parent: str | None, model: str,
                dtype: str, comp: Compression, rec: Recovery | None = None) -> str:
    """Add the checkpoint node of (model, comp, rec), made by `stage` from `parent`."""
    return _add(grid, Node(chain_id(model, dtype, comp, rec), stage, "checkpoint", step, None,
                           parent, model, dtype, config_id(chain(model, dtype, comp, rec))))


def _experiment(grid: Grid, model: str, dtype: str, comp: Compression | None,
                rec: Recovery | None, evaluation: Evaluation, parent: str | None) -> None:
    exp = Experiment(model=model, eval=evaluation, dtype=dtype, compression=comp, recovery=rec)
    grid.experiments[exp.id] = exp
    _add(grid, Node(exp.id, evaluation.kind, "record", evaluation, exp, parent, model, dtype,
                    config_id(exp.to_dict())))


def _recoveries(grid: Grid, spec: Spec, seed: int) -> list[Recovery | None]:
    rec = spec.recovery
    if rec is None:
        return [None]
    out: list[Recovery | None] = [None] if 0 in rec.samples else []
    for i, dataset in enumerate(rec.datasets):
        for n in sorted(set(rec.samples) - {0}):
            step = Recovery(dataset=dataset, samples=n, seq_len=rec.seq_len, seed=seed,
                            options=rec.options)
            out.append(_resolve(grid, "recover", step, f"recovery.datasets[{i}]"))
    return out


def _refusal(config: PretrainedConfig | None, comp: Compression) -> str | None:
    """Why `comp` cannot be done on a model of `config` (None: it can, or it is not known)."""
    from complaw.compress.base import check_feasible

    if config is None:
        return None
    tokens = comp.calib_samples * comp.calib_seq_len if comp.calibration else None
    try:
        check_feasible(comp.method, config, tokens)
    except CompressionError as exc:
        return str(exc)
    return None


def expand(spec: Spec) -> Grid:
    """Every experiment of `spec` and the stage executions they need."""
    grid = Grid()
    evaluations = _evaluations(grid, spec)
    dtype = spec.dtype
    for i, method in enumerate(spec.methods):
        unknown = sorted(set(method.models or []) - set(spec.models))
        if unknown:
                raise ConfigError(f"methods[{i}].models: {', '.join(unknown)} not in models; "
                              f"allowed: {', '.join(spec.models)}")
    from complaw.models.sources import known_config

    for model in spec.models:
        config = known_config(model)
        _evaluate(grid, evaluations, model, dtype, None, None, None)
        for i, method in enumerate(spec.methods):
            if method.models is not None and model not in method.models:
                continue
            calib = method.calibration
            for ratio in method.ratios if method.ratios is not None else spec.ratios:
                for seed in spec.seeds:
                    step = Compression(
                        method=method.name, ratio=ratio, seed=seed, options=method.options,
                        calibration=calib and calib.data,
                        calib_samples=calib and calib.samples,
                        calib_seq_len=calib and calib.seq_len,
                    )
                    comp = _resolve(grid, "compress", step, f"methods[{i}]")
                    why = _refusal(config, comp)
                    if why is not None:
                        grid.refused[(model, why)] += 1
                        continue
                    comp_id = _checkpoint(grid, "compress", comp, None, model, dtype, comp)
                    for rec in _recoveries(grid, spec, seed):
                        parent = comp_id
                        if rec is not None:
                            parent = _checkpoint(grid, "recover", rec, comp_id, model, dtype,
                                                 comp, rec)
                        _evaluate(grid, evaluations, model, dtype, comp, rec, parent)
    if not spec.methods and spec.ratios:
        raise ConfigError("ratios are given but no methods; add methods (e.g. prunenet)")
    unknown = sorted(set(spec.resources) - set(grid.counts()))
    if unknown:
        raise ConfigError(f"resources: {', '.join(unknown)} is no stage of this study; "
                          f"allowed: {', '.join(sorted(grid.counts()))}")
    return grid


def describe(grid: Grid) -> list[tuple[str, int]]:
    """(line, count) rows of a dry run: experiments by kind, then executions per stage."""
    experiments = list(grid.experiments.values())
    base = sum(e.compression is None for e in experiments)
    rows = [("experiments", len(experiments)), ("  compressed", len(experiments) - base),
            ("  baselines (uncompressed)", base)]
    by_eval = Counter(e.eval.kind for e in experiments)
    rows += [(f"  evaluation {k}", v) for k, v in sorted(by_eval.items())]
    if grid.refused:
        rows.append(("refused compressions (see below)", sum(grid.refused.values())))
    counts = grid.counts()
    rows.append(("stage executions", sum(counts.values())))
    order = ["compress", "recover", *sorted(set(counts) - {"compress", "recover"})]
    for stage in order:
        if stage in counts:
            rows.append((f"  {stage}", counts[stage]))
    return rows
