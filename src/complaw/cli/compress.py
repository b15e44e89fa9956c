"""`complaw compress`: compress one model with one registered method and save the checkpoint."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Annotated, Any

from rich.table import Table
from typer import Option

from complaw.cli.app import app, console
from complaw.errors import ConfigError
from complaw.progress import quiet_libraries


def parse_option(text: str) -> tuple[str, Any]:
    """`key=value` → (key, value); the value is read as JSON when it is JSON (numbers, true,
    false, null), else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--option expects key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


@app.command("compress")
def compress_command(
    model: Annotated[str, Option(help="Model alias, local HF folder, .gguf file or hub id.")],
    method: Annotated[str, Option(help="Compression method (e.g. prunenet, slicegpt).")],
    ratio: Annotated[float, Option(help="The method's compression ratio in [0, 1).")],
    out: Annotated[Path, Option(help="Folder to write the compressed checkpoint into.")],
    policy: Annotated[
        str | None,
        Option(help="PruneNet neuron policy (random, magnitude, learned); = --option policy=."),
    ] = None,
    calibration: Annotated[
        str | None, Option(help="Calibration data DATASET:SPLIT, e.g. ptb:valid.")
    ] = None,
    calib_samples: Annotated[int | None, Option(
        help="Calibration blocks to use [default: 32].")] = None,
    calib_seq_len: Annotated[int | None, Option(
        help="Tokens per calibration block [default: 1024].")] = None,
    seed: Annotated[int, Option(help="Seed of the method's random choices.")] = 0,
    option: Annotated[
        list[str] | None,
        Option("--option", "-o", help="Method option key=value (repeatable)."),
    ] = None,
    data_dir: Annotated[
        Path | None, Option(help="Dataset folder (default: $COMPLAW_DATA_DIR).")
    ] = None,
    dtype: Annotated[str, Option(help="Weights dtype: float32, bfloat16 or float16.")] = "float32",
    overwrite: Annotated[bool, Option(help="Replace an existing non-empty --out folder.")] = False,
) -> None:
    """Compress MODEL with METHOD at RATIO and save it (model, tokenizer, complaw.json) to OUT."""
    from complaw.config import Compression
    from complaw.experiment.pipeline import run_compress

    quiet_libraries()
    options = dict(parse_option(text) for text in option or [])
    if policy is not None:
        options["policy"] = policy
    config = Compression(
        method=method, ratio=ratio, seed=seed, options=options, calibration=calibration,
        calib_samples=calib_samples, calib_seq_len=calib_seq_len,
    )
    result = run_compress(model, config, out, dtype=dtype, data_dir=data_dir,
                          overwrite=overwrite)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    table = Table(title=f"complaw compress: {model} · {method}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("ratio", f"{result.ratio:g}"),
        ("options", json.dumps(result.options) if result.options else "-"),
        ("params total", f"{result.params_before['total']:,} → {result.params_after['total']:,}"),
        ("params blocks",
         f"{result.params_before['blocks']:,} → {result.params_after['blocks']:,}"),
        ("achieved reduction",
         f"blocks {result.achieved['blocks']:.2%} · total {result.achieved['total']:.2%}"),
        ("compression time", f"{result.seconds:.1f} s"),
        ("peak memory (process RSS)", f"{peak_mib:,.0f} MiB"),
        ("saved to", str(out)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
