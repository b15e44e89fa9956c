"""`complaw recover`: LoRA recovery fine-tuning with a token budget D, merged and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from rich.table import Table
from typer import Option

from complaw.cli.app import app, console, quiet_transformers

# The defaults and help texts are RecoveryConfig's; importing it here would import torch, which
# `complaw fit/plan` must not need, so they are spelled out and checked by a test.
_PROJECTIONS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


@app.command("recover")
def recover_command(
    model: Annotated[str, Option(help="Alias, HF folder, hub id, .gguf or checkpoint.")],
    out: Annotated[Path, Option(help="Folder to write the recovered checkpoint into.")],
    data: Annotated[str, Option(help="Training data NAME[:SPLIT] (default split: train); "
                                     "test splits are refused.")] = "alpaca:train",
    tokens: Annotated[int | None, Option(help="Training budget D in tokens (0 = no recovery: "
                                              "the input is written unchanged).")] = None,
    samples: Annotated[int | None, Option(help="Budget in sequences of --seq-len tokens "
                                               "(instead of --tokens).")] = None,
    seq_len: Annotated[int, Option(help="Tokens per packed training block.")] = 1024,
    rank: Annotated[int, Option(help="LoRA rank r.")] = 16,
    alpha: Annotated[float, Option(help="LoRA scaling alpha (scale alpha/r).")] = 32.0,
    dropout: Annotated[float, Option(help="Dropout on the LoRA input.")] = 0.05,
    lr: Annotated[float, Option(help="Peak AdamW learning rate.")] = 2e-4,
    weight_decay: Annotated[float, Option(help="AdamW weight decay.")] = 0.0,
    warmup: Annotated[float, Option(help="Warm-up as a fraction of the steps.")] = 0.03,
    scheduler: Annotated[str, Option(help="Decay after warm-up (transformers scheduler name: "
                                          "linear, cosine, ...).")] = "linear",
    batch_size: Annotated[int, Option(help="Blocks per optimizer step.")] = 4,
    seed: Annotated[int, Option(help="Seed of the LoRA init and dropout.")] = 0,
    targets: Annotated[str, Option(help="Comma-separated projections LoRA adapts.")] = _PROJECTIONS,
    include_shortcuts: Annotated[bool, Option(
        help="Also adapt the other linear maps inside decoder layers (SliceGPT's shortcuts).")
    ] = False,
    grad_checkpointing: Annotated[bool, Option(help="Recompute activations in the backward pass "
                                                    "(less memory, slower).")] = False,
    log_every: Annotated[int, Option(help="Record the mean train loss every N steps.")] = 10,
    device: Annotated[str, Option(help="auto (CUDA with bf16 autocast when present), cpu, "
                                       "cuda, cuda:N.")] = "auto",
    data_dir: Annotated[Path | None, Option(help="Dataset folder (default: $COMPLAW_DATA_DIR).")
                        ] = None,
    overwrite: Annotated[bool, Option(help="Replace an existing non-empty --out folder.")] = False,
) -> None:
    """Recover MODEL with LoRA on exactly D tokens of DATA, merge, and save it to OUT."""
    from complaw.recover import RecoveryConfig, recover

    quiet_transformers()
    config = RecoveryConfig(
        data=data, tokens=tokens, samples=samples, seq_len=seq_len, rank=rank, alpha=alpha,
        dropout=dropout, lr=lr, weight_decay=weight_decay, warmup=warmup, scheduler=scheduler,
        batch_size=batch_size, seed=seed,
        targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
        include_shortcuts=include_shortcuts, grad_checkpointing=grad_checkpointing,
        log_every=log_every,
    )
    result = recover(model, config, out, device=device, data_dir=data_dir, overwrite=overwrite)
    rec, stats = result.recovery, result.stats
    table = Table(title=f"complaw recover: {model} · {rec['dataset']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    final = "-" if stats.final_loss is None else f"{stats.final_loss:.4f}"
    first = f"{stats.losses[0]['loss']:.4f} → " if stats.losses else ""
    rows = [
        ("tokens (D)",
         f"{rec['tokens']:,} in {rec['sequences']:,} sequences of ≤ {rec['seq_len']}"),
        ("steps", f"{rec['steps']:,} (batch {rec['batch_size']})"),
        ("LoRA", f"rank {rec['rank']}, alpha {rec['alpha']:g}, {stats.trainable_params:,} "
                 "trainable parameters"),
        ("train loss", f"{first}{final} (first interval → last step)"),
        ("time", f"{stats.seconds:.1f} s · {stats.tokens_per_s:,.0f} tok/s · {stats.device} "
                 f"{stats.precision}"),
        (f"peak memory ({stats.peak_memory_of})", f"{stats.peak_memory_mib:,.0f} MiB"),
        ("saved to", str(result.folder)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
