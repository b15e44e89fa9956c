"""Inference speed at fixed shapes: prefill and decode tokens/s, peak memory, FLOPs per token.

Prefill: one forward pass over `batch_size` random prompts of `prompt_len` tokens, filling the KV
cache. Decode: `new_tokens` greedy steps from that cache, one token per sequence per step (the
loop `generate` runs, without its stopping rules, so that every run decodes the same number of
tokens). Each repeat times both phases; `warmup` repeats come first and are not kept. With a
baseline, the two models alternate within every repeat, so that both see the same machine
state, and the record keeps the speedup (model tokens/s over baseline tokens/s, medians).

FLOPs per token are counted from the model's shapes (`flops_per_token`): 2 multiply-adds per
weight of every linear layer (the LM head included, embedding lookups excluded) plus the
attention scores and values at the given context length. Their ratio is the FLOP-proportional
ideal speedup that a measured speedup can be set against.
"""

from __future__ import annotations

import inspect
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from complaw.config import SpeedOptions
from complaw.models import LoadedModel
from complaw.progress import track


def flops_per_token(model: nn.Module, context: int) -> int:
    """Forward FLOPs per token at `context` tokens of context: 2 x the weights of every nn.Linear
    (each weight is one multiply-add per token) plus, per attention layer, 2 x 2 x context x
    (query heads x head dim) for the scores and the weighted sum of values."""
    linear = sum(m.in_features * m.out_features for m in model.modules()
                 if isinstance(m, nn.Linear))
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    layers = sum(1 for m in model.modules() if type(m).__name__.endswith("Attention"))
    return 2 * linear + 4 * layers * context * heads * head_dim


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


class _Timer:
    """Times the prefill and decode of one model on fixed random prompts."""

    def __init__(self, loaded: LoadedModel, config: SpeedOptions, seed: int = 0) -> None:
        self.model = loaded.model.eval()
        self.config = config
        self.device = next(self.model.parameters()).device
        self.sync = _sync(self.device)
        vocab = self.model.config.vocab_size
        g = torch.Generator().manual_seed(seed)
        self.prompt = torch.randint(0, vocab, (config.batch_size, config.prompt_len),
                                    generator=g).to(self.device)
        # transformers 5.x names the KV-cache argument `cache` (older: `past_key_values`)
        params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.prefill: list[float] = []
        self.decode: list[float] = []
        self.peak_bytes = 0

    def run(self, keep: bool) -> None:
        c = self.config
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with torch.inference_mode():
            self.sync()
            start = time.perf_counter()
            out = self.model(input_ids=self.prompt, use_cache=True)
            self.sync()
            prefill = time.perf_counter() - start
            cache = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            self.sync()
            start = time.perf_counter()
            for _ in range(c.new_tokens):
                out = self.model(input_ids=token, use_cache=True, **{self.cache_arg: cache})
                cache = out.past_key_values
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            self.sync()
            decode = time.perf_counter() - start
        if self.device.type == "cuda":
            self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated(self.device))
        if keep:
            self.prefill.append(c.batch_size * c.prompt_len / prefill)
            self.decode.append(c.batch_size * c.new_tokens / decode)

    def summary(self) -> dict[str, Any]:
        c = self.config
        weights = sum(t.numel() * t.element_size()
                      for t in (*self.model.parameters(), *self.model.buffers()))
        out: dict[str, Any] = {"weights_bytes": weights}
        for phase, values in (("prefill", self.prefill), ("decode", self.decode)):
            out[phase] = {"tokens_per_s": statistics.median(values), "min": min(values),
                          "max": max(values), "repeats": values}
        if self.device.type == "cuda":
            out["peak_memory_bytes"] = self.peak_bytes
        # FLOPs at the mean context of each phase
        out["flops_per_token"] = {
            "prefill": flops_per_token(self.model, (c.prompt_len + 1) // 2),
            "decode": flops_per_token(self.model, c.prompt_len + (c.new_tokens + 1) // 2),
        }
        return out


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure_speed(
    loaded: LoadedModel, config: SpeedOptions, baseline: LoadedModel | None = None,
) -> dict[str, Any]:
    """Prefill and decode tokens/s of `loaded` (and of `baseline`, interleaved) at the shapes of
    `config`. Returns {"model": summary, "baseline": summary | None, "speedup": {"prefill",
    "decode", "ideal_prefill", "ideal_decode"} | None, "threads", "device",
    "process_peak_rss_bytes"}; a summary holds each phase's median, min, max and per-repeat
    tokens/s, the weights' bytes, FLOPs per token, and on CUDA the peak allocated memory."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    timers = [_Timer(loaded, config)]
    if baseline is not None:
        timers.append(_Timer(baseline, config))
    rounds = range(config.warmup + config.repeats)
    for i in track(rounds, "timing prefill and decode", total=len(rounds)):
        for timer in timers if i % 2 == 0 else reversed(timers):
            timer.run(keep=i >= config.warmup)
    model = timers[0].summary()
    base = timers[1].summary() if baseline is not None else None
    speedup = None
    if base is not None:
        speedup = {}
        for phase in ("prefill", "decode"):
            speedup[phase] = model[phase]["tokens_per_s"] / base[phase]["tokens_per_s"]
            speedup[f"ideal_{phase}"] = (base["flops_per_token"][phase]
                                         / model["flops_per_token"][phase])
    return {"model": model, "baseline": base, "speedup": speedup,
            "threads": torch.get_num_threads(), "device": str(timers[0].device),
            "process_peak_rss_bytes": _peak_rss_bytes()}


def speed_metrics(result: dict[str, Any], baseline: str | None = None) -> list[dict[str, Any]]:
    """Record metric entries from a `measure_speed` result: "throughput" (tokens/s) and, with a
    baseline, "speedup" per phase (dataset "prefill" / "decode"), and "memory" (bytes)."""
    model, base = result["model"], result["baseline"]
    out: list[dict[str, Any]] = []
    for phase in ("prefill", "decode"):
        stats = model[phase]
        out.append({"metric": "throughput", "dataset": phase, "value": stats["tokens_per_s"],
                    "min": stats["min"], "max": stats["max"], "unit": "tokens/s",
                    "flops_per_token": model["flops_per_token"][phase],
                    "threads": result["threads"]})
        if base is not None:
            out.append({"metric": "speedup", "dataset": phase,
                        "value": result["speedup"][phase],
                        "ideal": result["speedup"][f"ideal_{phase}"], "baseline": baseline,
                        "baseline_tokens_per_s": base[phase]["tokens_per_s"],
                        "baseline_flops_per_token": base["flops_per_token"][phase]})
    out.append({"metric": "memory", "dataset": "weights", "value": model["weights_bytes"],
                "unit": "bytes"})
    if "peak_memory_bytes" in model:
        out.append({"metric": "memory", "dataset": "peak", "value": model["peak_memory_bytes"],
                    "unit": "bytes"})
    return out
