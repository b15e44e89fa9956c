"""LoRA through peft on the model's own causal-LM loss: attach, train one pass, merge."""

from __future__ import annotations

import contextlib
import math
import resource
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel, get_scheduler

from complaw.config import Recovery
from complaw.errors import ConfigError
from complaw.models.adapters import ArchitectureAdapter
from complaw.progress import progress_bars
from complaw.recover.batches import Batch
from complaw.recover.config import RecoveryError


def resolve_device(device: str) -> torch.device:
    """`auto` → CUDA when present, else CPU; an unavailable CUDA device is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available; use cpu")
    return resolved


def lora_targets(
    model: PreTrainedModel, adapter: ArchitectureAdapter, config: Recovery
) -> list[str]:
    """Full module names LoRA adapts: the adapter's projections in the `targets` option of every
    decoder layer and, with `include_shortcuts`, every other nn.Linear inside the decoder layers
    (SliceGPT's shortcut matrices)."""
    options = config.lora
    names = adapter.projection_names(model, options.targets)
    modules = dict(model.named_modules())
    for name in names:
        if not isinstance(modules.get(name), nn.Linear):
            raise RecoveryError(f"LoRA target {name} is {type(modules.get(name)).__name__}, not "
                                "nn.Linear; the architecture adapter names the wrong module")
    if options.include_shortcuts:
        projections = set(adapter.projection_names(model))
        names += [
            name for name, module in modules.items()
            if name.startswith(f"{adapter.layers}.") and isinstance(module, nn.Linear)
            and name not in projections
        ]
    return names


def attach_lora(
    model: PreTrainedModel, adapter: ArchitectureAdapter, config: Recovery
) -> PeftModel:
    """Wrap `model` (in place) with fresh LoRA adapters, seeded by `config.seed`."""
    options = config.lora
    if options.grad_checkpointing:
        _checkpointing(model, True)
    lora = LoraConfig(
        r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout, bias="none",
        target_modules=lora_targets(model, adapter, config), task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)
    with warnings.catch_warnings():  # peft reads transformers' deprecated attribute
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        return get_peft_model(model, lora)


def merge(peft_model: PeftModel) -> PreTrainedModel:
    """Fold the LoRA updates into the weights (peft's merge_and_unload); eval mode."""
    return peft_model.merge_and_unload().eval()


def _checkpointing(model: PreTrainedModel, on: bool) -> None:
    """Switch activation (a.k.a. gradient) checkpointing, non-reentrant, on or off."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        if on:
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


@dataclass
class TrainStats:
    steps: int = 0
    tokens: int = 0  # input tokens trained on (= D)
    sequences: int = 0
    final_loss: float | None = None  # the last step's loss
    losses: list[dict[str, float]] = field(default_factory=list)  # per-interval mean loss
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    peak_memory_mib: float = 0.0
    peak_memory_of: str = "process RSS"
    device: str = "cpu"
    precision: str = "float32"
    trainable_params: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[..., None]]:
    """A transient progress bar on stderr with step, loss and tokens/s (off when not a TTY)."""
    fields = ("loss {task.fields[loss]}", "{task.fields[speed]} tok/s")
    with progress_bars(fields=fields) as progress:
        task = progress.add_task("LoRA recovery", total=total, loss="-", speed="-")
        yield lambda **fields: progress.update(task, advance=1, **fields)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _backward(
    model: PeftModel, batch: Batch, autocast: Callable[[], Any], where: str
) -> float:
    """The batch's loss (labels = input ids), back-propagated; a non-finite one is an error."""
    with autocast():
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     labels=batch.labels, use_cache=False).loss
    value = loss.item()
    if not math.isfinite(value):
        raise RecoveryError(f"the train loss is {value} at {where}; stopped, nothing saved. "
                            "Lower --lr, or check the model's weights and dtype")
    loss.backward()
    return value


def train_lora(
    model: PreTrainedModel,
    adapter: ArchitectureAdapter,
    batches: list[Batch],
    config: Recovery,
    device: torch.device | str = "cpu",
) -> tuple[PeftModel, TrainStats]:
    """One pass of LoRA training over `batches` on `model`'s own loss (labels = input ids).

    AdamW on the LoRA parameters, the `scheduler` option with warm-up over `warmup` of the
    steps; CUDA runs under bf16 autocast, CPU in float32. A non-finite loss raises
    RecoveryError naming the step (`model` is then left without LoRA layers, as it came).
    Returns the (unmerged) peft model, which wraps `model` in place, and the run's statistics.
    """
    device, options = torch.device(device), config.lora
    model.to(device)
    peft_model = attach_lora(model, adapter, config)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    steps = len(batches)
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=options.weight_decay)
    scheduler = get_scheduler(options.scheduler, optimizer,
                              num_warmup_steps=round(options.warmup * steps),
                              num_training_steps=steps)
    cuda = device.type == "cuda"
    stats = TrainStats(steps=steps, device=str(device), precision="bf16 autocast" if cuda
                       else "float32", peak_memory_of="CUDA allocated" if cuda else "process RSS",
                       trainable_params=sum(p.numel() for p in trainable))
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda \
        else contextlib.nullcontext
    peft_model.train()
    interval: list[float] = []
    start = time.perf_counter()
    try:
        with _progress(steps) as advance:
            for step, batch in enumerate(batches, start=1):
                batch = batch.to(device)
                value = _backward(peft_model, batch, autocast, f"step {step} of {steps}")
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                stats.tokens += batch.tokens
                stats.sequences += len(batch.input_ids)
                stats.final_loss = value
                interval.append(value)
                if len(interval) == options.log_every or step == steps:
                    stats.losses.append({"step": step, "tokens": stats.tokens,
                                         "loss": sum(interval) / len(interval)})
                    interval = []
                speed = stats.tokens / (time.perf_counter() - start)
                advance(loss=f"{value:.3f}", speed=f"{speed:.0f}")
    except BaseException:
        peft_model.unload()  # leave `model` as it came: no LoRA layers, weights unchanged
        raise
    stats.seconds = time.perf_counter() - start
    if options.grad_checkpointing:
        _checkpointing(model, False)
    stats.tokens_per_s = stats.tokens / stats.seconds if stats.seconds else 0.0
    stats.peak_memory_mib = _peak_memory_mib(device)
    peft_model.eval()
    return peft_model, stats
