"""Training tokens/s of complaw's LoRA recovery loop against a bare peft + torch loop, same model,
batches and LoRA settings, in one process; with each side's peak RSS.

    COMPLAW_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/recover_throughput.py \
        [--model smollm2-135m] [--data alpaca:train] [--seq-len 512 1024] [--batch-size 1] \
        [--steps 4] [--rounds 2]

Target: ratio >= 0.9. Each round runs both sides, the first side alternating between rounds;
the best of each counts (a load spike from elsewhere hits both alike). Peak RSS is sampled
every 10 ms during each side's loop.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import torch
from peft import LoraConfig, get_peft_model
from rich.console import Console
from rich.table import Table
from transformers import get_scheduler

from complaw.data import DataRef, tokenize
from complaw.models import load_model
from complaw.recover import (
    Recovery,
    lora_targets,
    train_lora,
    training_batches,
    training_rows,
)


@contextmanager
def peak_rss() -> Iterator[list[float]]:
    """Yields a one-element list that holds the peak RSS (MiB) seen while the block ran."""
    process, peak, done = psutil.Process(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            done.wait(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def bare_loop(loaded, batches, config: Recovery, targets: list[str]) -> tuple[float, float]:
    """Tokens/s and peak RSS of the textbook peft loop: LoRA, AdamW, linear warm-up/decay."""
    torch.manual_seed(config.seed)
    lora = config.lora
    peft_model = get_peft_model(loaded.model, LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=targets, task_type="CAUSAL_LM"))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lora.lr, weight_decay=lora.weight_decay)
    scheduler = get_scheduler("linear", optimizer, round(lora.warmup * len(batches)),
                              len(batches))
    peft_model.train()
    with peak_rss() as peak:
        start = time.perf_counter()
        for batch in batches:
            loss = peft_model(input_ids=batch.input_ids, labels=batch.labels, use_cache=False).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
    peft_model.unload()
    return sum(b.tokens for b in batches) / seconds, peak[0]


def complaw_loop(loaded, batches, config: Recovery, targets: list[str]
                 ) -> tuple[float, float]:
    """Tokens/s and peak RSS of `train_lora` (which derives the same `targets` itself)."""
    with peak_rss() as peak:
        peft_model, stats = train_lora(loaded.model, loaded.adapter, batches, config)
    peft_model.unload()
    return stats.tokens_per_s, peak[0]


SIDES = {"bare": bare_loop, "complaw": complaw_loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="alpaca:train")
    parser.add_argument("--seq-len", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    loaded = load_model(args.model)
    ids = tokenize(DataRef.parse(args.data).text(), loaded.tokenizer)
    table = Table(title=f"LoRA recovery training throughput: {args.model} on {args.data}, "
                        f"{torch.get_num_threads()} threads")
    for column in ("seq_len", "batch", "steps", "bare tok/s", "complaw tok/s", "ratio",
                   "bare peak RSS MiB", "complaw peak RSS MiB"):
        table.add_column(column, justify="right")
    for seq_len in args.seq_len:
        tokens = args.steps * args.batch_size * seq_len
        config = Recovery(dataset=args.data, tokens=tokens, seq_len=seq_len,
                          options={"batch_size": args.batch_size}).resolve()
        batches = training_batches(training_rows(ids, tokens, seq_len, args.data),
                                   args.batch_size, pad_id=0)
        targets = lora_targets(loaded.model, loaded.adapter, config)
        bare_loop(loaded, batches[:1], config, targets)  # warm-up
        best = {side: (0.0, 0.0) for side in SIDES}  # (tok/s, peak RSS)
        for round_ in range(args.rounds):
            for side in sorted(SIDES, reverse=bool(round_ % 2)):  # who goes first alternates
                speed, rss = SIDES[side](loaded, batches, config, targets)
                best[side] = (max(best[side][0], speed), max(best[side][1], rss))
        (bare, bare_rss), (ours, our_rss) = best["bare"], best["complaw"]
        table.add_row(str(seq_len), str(args.batch_size), str(len(batches)), f"{bare:.0f}",
                      f"{ours:.0f}", f"{ours / bare:.3f}", f"{bare_rss:,.0f}", f"{our_rss:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
