"""`complaw evaluate`: test cross-entropy of one model on one dataset, written as a record."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from complaw.cli.app import app, console, quiet_transformers


@app.command()
def evaluate(
    model: str = typer.Option(
        ..., help="Alias (smollm2-135m), .gguf file, HF folder, hub id, or a compressed checkpoint."
    ),
    data: str = typer.Option("wikitext2", help="Dataset[:split], e.g. wikitext2 or ptb:test."),
    seq_len: int = typer.Option(1024, help="Tokens per non-overlapping block."),
    max_tokens: int = typer.Option(None, help="Use only the first N tokens (default: all)."),
    batch_size: int = typer.Option(4, help="Blocks per forward pass."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:0, ..."),
    data_dir: Path = typer.Option(None, help="Data directory (default: $COMPLAW_DATA_DIR)."),
    out: Path = typer.Option(None, help="Folder to write the JSON record into."),
) -> None:
    """Measure intrinsic test cross-entropy (nats) and perplexity of a model."""
    from complaw.study.pipeline import intrinsic_config, run_intrinsic

    quiet_transformers()
    config = intrinsic_config(model, data, seq_len, max_tokens, batch_size, dtype)
    record = run_intrinsic(config, out, device, data_dir, location=model)
    metric = record["metrics"][0]
    table = Table(title=f"{model} on {metric['dataset']}")
    for column in ("loss (nats)", "perplexity", "tokens", "tokens/s", "parameters"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{metric['loss']:.4f}", f"{metric['perplexity']:.2f}", f"{metric['tokens']:,}",
        f"{metric['tokens_per_s']:.0f}", f"{record['params']['total']:,}",
    )
    console.print(table)
    if "path" in record:
        console.print(f"record: {record['path']}")
