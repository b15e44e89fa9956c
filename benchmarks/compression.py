"""Every registered compression method (and its variants) × ratio on one model: test perplexity,
achieved parameter reduction, compression time and memory.

    COMPLAW_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/compression.py \
        [--model smollm2-135m] [--ratios 0,0.1,0.3,0.5] [--max-tokens 32768] [--out runs/bench]

Methods come from the METHODS registry; a method with a `variants` mapping (name → options,
e.g. PruneNet's policies) is run once per variant. Methods that need calibration get the first
--calib-samples blocks of --calib-seq-len tokens of --calibration (default ptb:valid).
Perplexity is on the first --max-tokens tokens of WikiText-2 test in blocks of --seq-len.

Memory: a psutil thread samples the process RSS every 10 ms during each compression. We report
the peak RSS over that run and its growth above the RSS at the run's start (which already holds
the pristine model and the copy being compressed), next to the model's size. `ru_maxrss`
cannot be used per run: it is the process-lifetime peak.

Writes compression.csv and compression.md into --out and prints a rich table.

`--slicegpt-bases` runs only SliceGPT, once per variant and ratio, and prints perplexity, time and
RSS growth side by side (slicegpt_bases.csv / .md). A variant is a PCA basis (`basis` option: the
normalised signal or the un-normalised residual stream), with "-uncentred" to keep the embedding
rows as they are (`centre_embeddings=False`); `--bases residual,residual-uncentred` isolates the
centring. Example, the setting of issue 11 (PTB train calibration, 32 × 1,024
tokens; WikiText-2 test, 16,384 tokens in blocks of 1,024):

    benchmarks/compression.py --slicegpt-bases --ratios 0.1,0.3,0.5,0.7 --calibration ptb:train \
        --calib-seq-len 1024 --calib-samples 32 --max-tokens 16384
"""

from __future__ import annotations

import argparse
import copy
import csv
import threading
from pathlib import Path
from typing import Any

import psutil
import torch
from rich.console import Console
from rich.table import Table

from complaw.compress import METHODS, compress
from complaw.compress.slicegpt import BASES, SliceOptions
from complaw.data import DataRef, load_blocks
from complaw.evaluate.intrinsic import evaluate_loss
from complaw.models import load_model

MIB = 2**20
COLUMNS = (
    "method", "ratio", "loss", "perplexity", "achieved_blocks", "achieved_total",
    "params_total", "compress_s", "peak_rss_mib", "rss_growth_mib", "model_mib",
)


class PeakRSS:
    """Samples this process's RSS in a thread while the `with` block runs."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.process = psutil.Process()

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        self.cpu_start = sum(self.process.cpu_times()[:2])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)
        self.cpu_s = sum(self.process.cpu_times()[:2]) - self.cpu_start

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.cpu_s = sum(self.process.cpu_times()[:2]) - self.cpu_start


def variants() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, variant name, options) for every registered method."""
    return [
        (name, label, options)
        for name, impl in METHODS.items()
        for label, options in getattr(impl, "variants", {name: {}}).items()
    ]


def token_blocks(args: argparse.Namespace, tokenizer: Any) -> tuple[Any, Any]:
    """The WikiText-2 test blocks and the calibration blocks that `args` describe."""
    test = load_blocks("wikitext2:test", tokenizer, args.seq_len, args.max_tokens, args.data_dir)
    calibration = load_blocks(
        DataRef.parse(args.calibration).require_not_test("calibration"), tokenizer,
        args.calib_seq_len, args.calib_samples * args.calib_seq_len, args.data_dir,
    )
    return test, calibration


def setup(args: argparse.Namespace) -> tuple[Any, float, Any, Any]:
    """The base model, its size in MiB, the test blocks and the calibration blocks."""
    loaded = load_model(args.model)
    base = loaded.model
    model_mib = sum(p.numel() * p.element_size() for p in base.parameters()) / MIB
    return base, model_mib, *token_blocks(args, loaded.tokenizer)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base, model_mib, test, calibration = setup(args)
    rows = []
    for method, label, options in variants():
        needs = METHODS.get(method).needs_calibration
        for ratio in args.ratios:
            model = copy.deepcopy(base)
            with PeakRSS() as memory:
                result = compress(model, method, ratio, calibration if needs else None,
                                  args.seed, **options)
            scored = evaluate_loss(result.model, test, args.batch_size)
            rows.append({
                "method": label, "ratio": ratio, "loss": scored.loss,
                "perplexity": scored.perplexity, "achieved_blocks": result.achieved["blocks"],
                "achieved_total": result.achieved["total"],
                "params_total": result.params_after["total"], "compress_s": result.seconds,
                "peak_rss_mib": memory.peak / MIB,
                "rss_growth_mib": (memory.peak - memory.start) / MIB, "model_mib": model_mib,
            })
            del model, result
    return rows


def slicegpt_variant(label: str) -> dict[str, Any]:
    """SliceGPT options for a --bases label: a basis, "-uncentred" to keep the embedding rows."""
    basis, _, suffix = label.partition("-")
    if basis not in BASES or suffix not in ("", "uncentred"):
        raise SystemExit(f"--bases: {label!r} is not one of {', '.join(BASES)} (optionally with "
                         "-uncentred)")
    return {"basis": basis, "centre_embeddings": not suffix}


def run_bases(args: argparse.Namespace) -> list[dict[str, Any]]:
    """SliceGPT once per (ratio, variant): one row per ratio with each variant's results."""
    base, model_mib, test, calibration = setup(args)
    rows = []
    for ratio in args.ratios:
        row: dict[str, Any] = {"ratio": ratio}
        for label in args.bases:
            model = copy.deepcopy(base)
            with PeakRSS() as memory:
                result = compress(model, "slicegpt", ratio, calibration, args.seed,
                                  batch_size=args.slicegpt_batch_size, **slicegpt_variant(label))
            scored = evaluate_loss(result.model, test, args.batch_size)
            row["params_total"] = result.params_after["total"]
            row[f"ppl_{label}"] = scored.perplexity
            row[f"s_{label}"] = result.seconds
            row[f"rss_growth_mib_{label}"] = (memory.peak - memory.start) / MIB
            print(f"r={ratio:g} {label}: ppl {scored.perplexity:.2f}, "
                  f"{result.seconds:.0f} s wall, {memory.cpu_s:.0f} s CPU, "
                  f"peak RSS {memory.peak / MIB:.0f} MiB (growth "
                  f"{(memory.peak - memory.start) / MIB:.0f} MiB; base model {model_mib:.0f} "
                  "MiB)", flush=True)
            del model, result
        rows.append(row)
    return rows


def print_bases(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    columns = ["ratio", "params_total"] + [
        f"{k}_{b}" for k in ("ppl", "s", "rss_growth_mib") for b in args.bases
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "slicegpt_bases.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    cells = [[f"{row['ratio']:g}", f"{row['params_total']:,}"]
             + [f"{row[c]:.1f}" for c in columns[2:]] for row in rows]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    (args.out / "slicegpt_bases.md").write_text("\n".join(lines) + "\n")
    table = Table(title=f"SliceGPT PCA basis on {args.model}: WikiText-2 test ppl, "
                        f"{args.max_tokens} tokens; calibration {args.calibration} "
                        f"{args.calib_samples} × {args.calib_seq_len}")
    for column in columns:
        table.add_column(column, justify="right")
    for c in cells:
        table.add_row(*c)
    Console().print(table)


def formatted(row: dict[str, Any]) -> list[str]:
    return [
        row["method"], f"{row['ratio']:g}", f"{row['loss']:.4f}", f"{row['perplexity']:.2f}",
        f"{row['achieved_blocks']:.1%}", f"{row['achieved_total']:.1%}",
        f"{row['params_total']:,}", f"{row['compress_s']:.1f}", f"{row['peak_rss_mib']:.0f}",
        f"{row['rss_growth_mib']:.0f}", f"{row['model_mib']:.0f}",
    ]


def write(rows: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compression.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(formatted(row)) + " |" for row in rows]
    (out / "compression.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ratios", type=lambda s: [float(r) for r in s.split(",")],
                        default=[0.0, 0.1, 0.3, 0.5])
    parser.add_argument("--max-tokens", type=int, default=32768)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--calibration", default="ptb:valid")
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--calib-seq-len", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--slicegpt-bases", action="store_true",
                        help="only SliceGPT, each PCA basis side by side")
    parser.add_argument("--bases", type=lambda s: s.split(","), default=list(BASES),
                        help="with --slicegpt-bases: the variants to run, each a basis, "
                             "optionally with -uncentred (default: every basis, centred)")
    parser.add_argument("--slicegpt-batch-size", type=int, default=SliceOptions.batch_size,
                        help="with --slicegpt-bases: calibration blocks per forward")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.slicegpt_bases:
        print_bases(run_bases(args), args)
        return

    rows = run(args)
    write(rows, args.out)
    table = Table(title=f"compression of {args.model}: WikiText-2 test, {args.max_tokens} tokens")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in rows:
        table.add_row(*formatted(row))
    Console().print(table)


if __name__ == "__main__":
    main()
