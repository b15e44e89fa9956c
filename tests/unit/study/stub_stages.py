"""Stub evaluation stages for the study tests and the runner benchmark (a plugin module: a
spec names it under `plugins`, so subprocess runners and Ray workers register them too).

`tick`: options {log, seconds, fail, nan, noisy}; appends the experiment's model to the `log`
file each time it runs (to count executions), sleeps `seconds`, raises for models in `fail`,
returns a NaN metric for models in `nan`, else a loss read from the model name's length; with
`noisy`, first prints what third-party libraries print in a run (`noise`).
`crashy`: kills its own worker process (os._exit) the first time it runs for a model (a marker
file in `markers`), then behaves like `tick`.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from complaw.experiment.records import Record
from complaw.study.stages import STAGES, Resources, Stage, StageContext, register


def noise() -> None:
    """A tqdm bar asked for with disable=False (as lm-eval's), a deprecation message through
    transformers' logger, a FutureWarning raised inside peft."""
    from tqdm import tqdm
    from transformers.utils import logging

    for _ in tqdm(range(3), desc="Running loglikelihood requests", disable=False):
        pass
    logging.get_logger("transformers.utils.generic").warning_once("stub_arg is deprecated")
    warnings.warn_explicit("stub_option is deprecated", FutureWarning, "peft/stub.py", 1,
                           module="peft.stub")


def _tick(ctx: StageContext) -> Record:
    opts = ctx.config.options
    if opts.get("noisy"):
        noise()
    model = ctx.experiment.model
    if opts.get("log"):
        with open(opts["log"], "a", encoding="utf-8") as f:
            f.write(model + "\n")
    time.sleep(opts.get("seconds", 0))
    if model in opts.get("fail", ()):
        raise RuntimeError(f"stub failure for {model}")
    value = float("nan") if model in opts.get("nan", ()) else 1.0 + len(model) / 10
    record = Record.new("evaluate", ctx.experiment, ctx.device)
    record.metrics = [{"metric": "loss", "dataset": "stub", "value": value}]
    return record


def _crashy(ctx: StageContext) -> Record:
    marker = Path(ctx.config.options["markers"]) / ctx.experiment.model
    if not marker.exists():
        marker.write_text("crashed once")
        os._exit(1)
    return _tick(ctx)


for name, run in (("tick", _tick), ("crashy", _crashy)):
    if name not in STAGES:
        register(Stage(name=name, slot="eval", produces="record", inputs=("model",), run=run,
                       resources=Resources(cpus=1, gpus=0)))
