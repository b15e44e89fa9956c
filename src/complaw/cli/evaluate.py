"""`complaw evaluate`: test cross-entropy of one model on one dataset, or (with --tasks) its
zero-shot accuracy through lm-eval, written as a record."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from complaw.cli.app import app, console, field_option
from complaw.config import Extrinsic, Intrinsic, TaskLoss
from complaw.errors import ConfigError
from complaw.progress import quiet_libraries


@app.command()
def evaluate(
    model: str = typer.Option(
        ..., help="Alias (smollm2-135m), .gguf file, HF folder, hub id, or a compressed checkpoint."
    ),
    data: str = field_option(Intrinsic, "data"),
    seq_len: int = field_option(Intrinsic, "seq_len"),
    max_tokens: int = field_option(Intrinsic, "max_tokens"),
    batch_size: int = field_option(Intrinsic, "batch_size"),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:0, ..."),
    data_dir: Path = typer.Option(None, help="Data directory (default: $COMPLAW_DATA_DIR)."),
    out: Path = typer.Option(None, help="Folder to write the JSON record into."),
    tasks: str = typer.Option(
        None, help="Zero-shot tasks instead of --data: piqa,winogrande,hellaswag,arc_easy,"
        "arc_challenge,mmlu, or 'paper' for all six (lm-eval, local files first)."
    ),
    limit: int = field_option(Extrinsic, "limit"),
    task_loss_only: bool = typer.Option(
        False, "--task-loss-only", help="With --tasks: score only each document's correct "
        "answer (task loss in bits/byte, no accuracy), one request per document."),
) -> None:
    """Measure intrinsic test cross-entropy (nats) and perplexity of a model, or with --tasks
    its zero-shot accuracy (lm-evaluation-harness)."""
    quiet_libraries()
    if tasks is not None:
        _zero_shot(model, tasks, limit, batch_size, dtype, device, data_dir, out,
                   TaskLoss if task_loss_only else Extrinsic)
        return
    if task_loss_only:
        raise ConfigError("--task-loss-only applies to zero-shot tasks; add --tasks")
    if limit is not None:
        raise ConfigError("--limit applies to zero-shot tasks; add --tasks (e.g. --tasks paper)")
    from complaw.experiment.pipeline import experiment_of, run_intrinsic

    evaluation = Intrinsic(data=data, seq_len=seq_len, max_tokens=max_tokens,
                           batch_size=batch_size)
    record = run_intrinsic(experiment_of(model, evaluation, dtype), out, device, data_dir,
                           location=model)
    metric = record.metrics[0]
    table = Table(title=f"{model} on {metric['dataset']}")
    for column in ("loss (nats)", "perplexity", "tokens", "tokens/s", "parameters"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{metric['loss']:.4f}", f"{metric['perplexity']:.2f}", f"{metric['tokens']:,}",
        f"{metric['tokens_per_s']:.0f}", f"{record.params['total']:,}",
    )
    console.print(table)
    if out is not None:
        console.print(f"record: {out / record.file_name}")


def _zero_shot(
    model: str, tasks: str, limit: int | None, batch_size: int, dtype: str, device: str,
    data_dir: Path | None, out: Path | None, kind: type[Extrinsic],
) -> None:
    from complaw.experiment.pipeline import experiment_of, run_extrinsic
    from complaw.laws.metrics import stage_metric

    evaluation = kind(tasks=tuple(tasks.split(",")), limit=limit,
                      options={"batch_size": batch_size})
    record = run_extrinsic(experiment_of(model, evaluation, dtype), out, device, data_dir,
                           location=model)
    table = Table(title=f"{model}: zero-shot accuracy and task loss")
    for column in ("task", "metric", "value ± s.e.", "chance", "docs", "source"):
        table.add_column(column, justify="left" if column in ("task", "source") else "right")
    for m in record.metrics:
        if "n_docs" in m:
            name = m.get("chosen", "bits/byte")
            table.add_row(m["dataset"], f"{m['metric']} ({name})",
                          f"{m['value']:.4f} ± {m['stderr']:.4f}", f"{m['chance']:.3f}",
                          f"{m['n_docs']:,}", m["source"])
        elif m["metric"] == stage_metric("extrinsic").name:
            table.add_row("mean (L)", m["metric"], f"{m['value']:.4f}", "", "", "")
        else:
            table.add_row("wall time", "", f"{m['value']:.1f} s", "", "", "")
    console.print(table)
    if out is not None:
        console.print(f"record: {out / record.file_name}")
