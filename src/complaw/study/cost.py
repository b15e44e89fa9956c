"""The cost model of a study's stage executions, in seconds.

A stage execution costs (parameters of its model) x (tokens it processes +
`OVERHEAD_TOKENS` for loading) x (seconds per parameter-token of its stage). `TOKENS` says how
many tokens each stage processes (calibration, RFT, evaluation); `PRIOR_RATE` holds seconds per
parameter-token measured with SmolLM2-135M on 2 CPU cores. Once stage executions have run, the
study's log calibrates the rates: a stage's rate on a model becomes its measured seconds over
its parameter-tokens (on that model, else on any model), a stage not yet measured is scaled
like the measured ones, and an execution that ran costs what it took.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from complaw.study.grid import Node

OVERHEAD_TOKENS = 1024
"""Loading a model, in tokens of work (SmolLM2 loads in about the time it evaluates 1k)."""
DEFAULT_EVAL_TOKENS = 65536
"""Tokens of an intrinsic evaluation without ``max_tokens`` (a test split, roughly)."""
DEFAULT_TASK_DOCS = 1000
REQUEST_TOKENS = 256
"""Tokens per zero-shot document (its choices scored one by one)."""
DECODE_FACTOR = 20
"""A decoded token costs about as much as this many prefilled ones (one token per forward)."""

TOKENS: dict[str, Callable[[Any], float]] = {
    "compress": lambda c: (c.calib_samples or 0) * (c.calib_seq_len or 0),
    "recover": lambda r: r.tokens or (r.samples or 0) * r.seq_len,
    "intrinsic": lambda e: len(e.data) * (e.max_tokens or DEFAULT_EVAL_TOKENS),
    "extrinsic": lambda e: len(e.tasks) * (e.limit or DEFAULT_TASK_DOCS) * REQUEST_TOKENS,
    "task_loss": lambda e: len(e.tasks) * (e.limit or DEFAULT_TASK_DOCS) * REQUEST_TOKENS / 3,
    "speed": lambda s: (s.options.get("repeats", 5) + s.options.get("warmup", 1)) * (
        s.options.get("prompt_len", 256) + DECODE_FACTOR * s.options.get("new_tokens", 32)),
}
"""Tokens each stage processes, by stage name; a stage not named here costs its overhead."""

_EVAL_RATE = 1.0 / (400 * 134.5e6)  # SmolLM2-135M evaluates about 400 tokens/s on 2 cores
PRIOR_RATE: dict[str, float] = {
    "compress": 2.0 * _EVAL_RATE,
    "recover": 400 / 170 * _EVAL_RATE,  # LoRA trains about 170 tokens/s
    "intrinsic": _EVAL_RATE,
    "extrinsic": _EVAL_RATE,
    "task_loss": _EVAL_RATE,
    "speed": _EVAL_RATE,
}
DEFAULT_PARAMS = 1e8


def params_from_name(model: str) -> float:
    """Parameters guessed from a model name (``Qwen/Qwen2.5-0.5B`` -> 5e8), else 1e8."""
    found = re.findall(r"(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", model.lower())
    if not found:
        return DEFAULT_PARAMS
    value, unit = found[-1]
    return float(value) * (1e6 if unit == "m" else 1e9)


def work(node: Node) -> float:
    """Tokens of work of one stage execution (without its model's size)."""
    tokens = TOKENS.get(node.stage)
    return OVERHEAD_TOKENS + (tokens(node.step) if tokens is not None else 0.0)


def cost_model(nodes: Iterable[Node]
               ) -> Callable[[dict[str, float], dict[str, float]], dict[str, float]]:
    """The costs of the stage executions ``nodes``, by id, as a function of each model's
    parameters (``sizes``) and the seconds the executions that ran took (``seconds``)."""
    nodes = list(nodes)
    units_of = {n.id: work(n) for n in nodes}
    stage_of = {n.id: n.stage for n in nodes}
    model_of = {n.id: n.model for n in nodes}

    def costs(sizes: dict[str, float], seconds: dict[str, float]) -> dict[str, float]:
        amount = {i: sizes[model_of[i]] * w for i, w in units_of.items()}

        def rates(key: Callable[[str], Any]) -> dict[Any, float]:
            sums: dict[Any, list[float]] = {}
            for i, s in seconds.items():
                if i in amount:
                    pair = sums.setdefault(key(i), [0.0, 0.0])
                    pair[0] += s
                    pair[1] += amount[i]
            return {k: s / a for k, (s, a) in sums.items() if a > 0 and s > 0}

        own = rates(lambda i: (stage_of[i], model_of[i]))  # this stage on this model
        stage = rates(lambda i: stage_of[i])  # this stage on any model
        scales = [stage[s] / PRIOR_RATE.get(s, _EVAL_RATE) for s in stage]
        scale = float(np.median(scales)) if scales else 1.0  # the machine against the prior

        def rate(i: str) -> float:
            return own.get((stage_of[i], model_of[i])) or stage.get(stage_of[i]) or (
                scale * PRIOR_RATE.get(stage_of[i], _EVAL_RATE))

        return {i: seconds[i] if i in seconds else amount[i] * rate(i) for i in amount}

    return costs
