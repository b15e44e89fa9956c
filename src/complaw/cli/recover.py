"""`complaw recover`: LoRA recovery fine-tuning with a token budget D, merged and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from rich.table import Table
from typer import Option

from complaw.cli.app import app, console, field_option
from complaw.config import LoraOptions, Recovery
from complaw.progress import quiet_libraries


@app.command("recover")
def recover_command(
    model: Annotated[str, Option(help="Alias, HF folder, hub id, .gguf or checkpoint.")],
    out: Annotated[Path, Option(help="Folder to write the recovered checkpoint into.")],
    data: str = field_option(Recovery, "dataset"),
    tokens: int | None = field_option(Recovery, "tokens"),
    samples: int | None = field_option(Recovery, "samples"),
    seq_len: int = field_option(Recovery, "seq_len"),
    rank: int = field_option(LoraOptions, "rank"),
    alpha: float = field_option(LoraOptions, "alpha"),
    dropout: float = field_option(LoraOptions, "dropout"),
    lr: float = field_option(LoraOptions, "lr"),
    weight_decay: float = field_option(LoraOptions, "weight_decay"),
    warmup: float = field_option(LoraOptions, "warmup"),
    scheduler: str = field_option(LoraOptions, "scheduler"),
    batch_size: int = field_option(LoraOptions, "batch_size"),
    seed: int = field_option(Recovery, "seed"),
    targets: str = field_option(LoraOptions, "targets"),
    include_shortcuts: bool = field_option(LoraOptions, "include_shortcuts"),
    grad_checkpointing: bool = field_option(LoraOptions, "grad_checkpointing"),
    log_every: int = field_option(LoraOptions, "log_every"),
    device: Annotated[str, Option(help="auto (CUDA with bf16 autocast when present), cpu, "
                                       "cuda, cuda:N.")] = "auto",
    data_dir: Annotated[Path | None, Option(help="Dataset folder (default: $COMPLAW_DATA_DIR).")
                        ] = None,
    overwrite: Annotated[bool, Option(help="Replace an existing non-empty --out folder.")] = False,
) -> None:
    """Recover MODEL with LoRA on exactly D tokens of DATA, merge, and save it to OUT."""
    from complaw.recover import recover

    quiet_libraries()
    options = {
        "rank": rank, "alpha": alpha, "dropout": dropout, "lr": lr, "weight_decay": weight_decay,
        "warmup": warmup, "scheduler": scheduler, "batch_size": batch_size,
        "targets": tuple(t.strip() for t in targets.split(",") if t.strip()),
        "include_shortcuts": include_shortcuts, "grad_checkpointing": grad_checkpointing,
        "log_every": log_every,
    }
    config = Recovery(dataset=data, tokens=tokens, samples=samples, seq_len=seq_len, seed=seed,
                      options=options)
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
