"""`complaw speed`: prefill and decode tokens/s of a model (against a baseline), as a record."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from complaw.cli.app import app, console, field_option
from complaw.config import Speed, SpeedOptions
from complaw.progress import quiet_libraries


@app.command()
def speed(
    model: str = typer.Option(..., help="Alias, .gguf file, HF folder, or compressed checkpoint."),
    baseline: str = typer.Option(None, help="A model to time alongside (interleaved); the record "
                                 "keeps the speedup of --model over it."),
    batch_size: int = field_option(SpeedOptions, "batch_size"),
    prompt_len: int = field_option(SpeedOptions, "prompt_len"),
    new_tokens: int = field_option(SpeedOptions, "new_tokens"),
    repeats: int = field_option(SpeedOptions, "repeats"),
    warmup: int = field_option(SpeedOptions, "warmup"),
    threads: int = field_option(SpeedOptions, "threads"),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:0, ..."),
    out: Path = typer.Option(None, help="Folder to write the JSON record into."),
) -> None:
    """Measure inference speed: prefill and decode tokens/s, with the FLOP-proportional ideal."""
    from complaw.experiment.pipeline import experiment_of, run_speed

    quiet_libraries()
    options = {"batch_size": batch_size, "prompt_len": prompt_len, "new_tokens": new_tokens,
               "repeats": repeats, "warmup": warmup, "threads": threads}
    experiment = experiment_of(model, Speed(device=device, options=options), dtype, baseline)
    record = run_speed(experiment, out, device, location=model, baseline_location=baseline)
    result = record.speed
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
    if out is not None:
        console.print(f"record: {out / record.file_name}")
