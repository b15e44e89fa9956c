"""Benchmark: the study runner's own overhead per experiment (target: <= 0.02 s local).

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/runner_overhead.py [--experiments N]
[--executors local,ray] [--ray-cpus C]``.

The grid is N baseline experiments of a stub evaluation stage registered here (it returns one
constant metric at once), so everything measured is the runner: grid expansion, the plan
(checking each record), executing, writing each record atomically, the log and progress. Each
executor runs into a fresh study folder; a second, all-cached pass measures the resume check.
Prints seconds per experiment; for Ray, the local cluster is started (and timed) before the run,
so that its start-up is not counted per experiment.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from complaw.experiment.records import Record
from complaw.study.runner import run_study
from complaw.study.spec import parse_spec
from complaw.study.stages import STAGES, Resources, Stage, StageContext, register

TARGET_S = 0.02


def _stub(ctx: StageContext) -> Record:
    record = Record.new("evaluate", ctx.experiment, ctx.device)
    record.metrics = [{"metric": "loss", "dataset": "stub", "value": 1.0}]
    return record


if "bench_stub" not in STAGES:
    register(Stage(name="bench_stub", slot="eval", produces="record", inputs=("model",),
                   run=_stub, resources=Resources(cpus=1, gpus=0)))


def measure(executor: str, n: int) -> tuple[float, float]:
    """(seconds per experiment on a fresh folder, seconds per experiment all cached)."""
    spec = parse_spec({
        "models": [f"stub-{i}" for i in range(n)],
        "plugins": ["benchmarks.runner_overhead"] if executor == "ray" else [],
        "evaluations": {"bench_stub": {}},
    })
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_study(spec, Path(tmp) / "study", executor=executor, progress=False)
        fresh = (time.perf_counter() - start) / n
        assert summary.done == n, summary
        start = time.perf_counter()
        run_study(spec, Path(tmp) / "study", progress=False)
        cached = (time.perf_counter() - start) / n
    return fresh, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--ray-cpus", type=int, default=2)
    args = parser.parse_args()
    table = Table(title=f"runner overhead, {args.experiments} stub experiments")
    for column in ("executor", "cluster start (s)", "s / experiment (fresh)",
                   "s / experiment (all cached)", "target"):
        table.add_column(column, justify="right")
    for executor in args.executors.split(","):
        startup = "-"
        if executor == "ray":
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
            startup = f"{time.perf_counter() - start:.1f}"
        fresh, cached = measure(executor, args.experiments)
        if executor == "ray":
            ray.shutdown()
        target = f"<= {TARGET_S}" if executor == "local" else "-"
        table.add_row(executor, startup, f"{fresh:.4f}", f"{cached:.4f}", target)
    Console().print(table)


if __name__ == "__main__":
    main()
