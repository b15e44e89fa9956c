"""`complaw speed`: prefill and decode tokens/s of a model (against a baseline), as a record."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from complaw.cli.app import app, console, quiet_transformers


@app.command()
def speed(
    model: str = typer.Option(..., help="Alias, .gguf file, HF folder, or compressed checkpoint."),
    baseline: str = typer.Option(None, help="A model to time alongside (interleaved); the record "
                                 "keeps the speedup of --model over it."),
    batch_size: int = typer.Option(1, help="Sequences per forward pass."),
    prompt_len: int = typer.Option(256, help="Prompt tokens (prefill)."),
    new_tokens: int = typer.Option(32, help="Greedy tokens decoded from the KV cache."),
    repeats: int = typer.Option(5, help="Timed repeats (median, min and max are kept)."),
    warmup: int = typer.Option(1, help="Untimed repeats first."),
    threads: int = typer.Option(None, help="Pin torch's CPU threads (default: torch's choice)."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:0, ..."),
    out: Path = typer.Option(None, help="Folder to write the JSON record into."),
) -> None:
    """Measure inference speed: prefill and decode tokens/s, with the FLOP-proportional ideal."""
    from complaw.evaluate.speed import SpeedConfig
    from complaw.study.pipeline import run_speed, speed_config

    quiet_transformers()
    settings = SpeedConfig(batch_size, prompt_len, new_tokens, repeats, warmup, threads)
    config = speed_config(model, settings, baseline, dtype)
    record = run_speed(config, out, device, location=model, baseline_location=baseline)
    result = record["speed"]
    table = Table(title=f"{model}: {batch_size} x {prompt_len} prompt, {new_tokens} new tokens, "
                        f"{result['threads']} threads")
    for column in ("model", "phase", "tokens/s (median)", "min", "max", "GFLOPs/token",
                   "speedup", "ideal"):
        table.add_column(column, justify="left" if column in ("model", "phase") else "right")
    rows = [(model, result["model"])]
    if result["baseline"] is not None:
        rows.append((baseline, result["baseline"]))
    for name, summary in rows:
        for phase in ("prefill", "decode"):
            stats = summary[phase]
            up = result["speedup"] if name == model and result["speedup"] else None
            table.add_row(
                name, phase, f"{stats['tokens_per_s']:.1f}", f"{stats['min']:.1f}",
                f"{stats['max']:.1f}", f"{summary['flops_per_token'][phase] / 1e9:.3f}",
                f"{up[phase]:.3f}" if up else "", f"{up[f'ideal_{phase}']:.3f}" if up else "",
            )
    console.print(table)
    if "path" in record:
        console.print(f"record: {record['path']}")
