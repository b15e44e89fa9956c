"""Zero-shot accuracy through lm-eval on tiny random models with SmolLM2's tokenizer."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from complaw.cli import app
from complaw.compress.base import compress
from complaw.compress.checkpoint import save_compressed
from complaw.config import Extrinsic, evaluation_from_dict
from complaw.errors import ConfigError, DataError
from complaw.evaluate.extrinsic import mean_label
from complaw.evaluate.tasks import write_tasks
from tests.unit.evaluate.conftest import tiny_smol_llama

runner = CliRunner()
N_DOCS = 20


def arc_docs(root: Path, n: int) -> list[dict]:
    lines = (root / "arc" / "ARC-Easy-test.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def continuation_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """Sum of log p(continuation tokens | context), from one forward pass over both."""
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    assert whole[:len(ctx)] == ctx
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].double()
    logprobs = logits.log_softmax(-1)
    return sum(float(logprobs[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))


def independent_scores(folder: Path, docs: list[dict]) -> tuple[float, float, list[float]]:
    """acc and acc_norm on ARC docs (argmax of summed log-likelihoods, and of the same divided
    by each choice's length in characters), and each document's task loss: the gold answer's
    negative log-likelihood in bits per UTF-8 byte of its continuation (" " + answer)."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    acc = acc_norm = 0
    bpb = []
    for doc in docs:
        context = f"Question: {doc['question']}\nAnswer:"
        choices = doc["choices"]["text"]
        gold = doc["choices"]["label"].index(doc["answerKey"])
        lls = [continuation_logprob(model, tokenizer, context, " " + c) for c in choices]
        norm = [ll / len(c) for ll, c in zip(lls, choices, strict=True)]
        acc += max(range(len(lls)), key=lls.__getitem__) == gold
        acc_norm += max(range(len(norm)), key=norm.__getitem__) == gold
        bpb.append(-lls[gold] / (math.log(2) * len((" " + choices[gold]).encode("utf-8"))))
    return acc / len(docs), acc_norm / len(docs), bpb


def test_arc_easy_accuracy_matches_independent_computation(tiny_smol_folder, shared_data,
                                                           tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_smol_folder), "--tasks",
                                 "arc_easy", "--limit", str(N_DOCS), "--batch-size", "8",
                                 "--data-dir", str(shared_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["config"]["eval"]["kind"] == "extrinsic"
    task, loss, mean, runtime = record["metrics"]
    docs = arc_docs(shared_data, N_DOCS)
    acc, acc_norm, bpb = independent_scores(tiny_smol_folder, docs)
    assert task["acc"] == pytest.approx(acc, abs=1e-12)
    assert task["acc_norm"] == pytest.approx(acc_norm, abs=1e-12)
    assert task["value"] == task["acc_norm"] and task["chosen"] == "acc_norm"
    assert task["acc_stderr"] == pytest.approx((acc * (1 - acc) / (N_DOCS - 1)) ** 0.5)
    assert (task["dataset"], task["n_docs"], task["limit"]) == ("arc_easy", N_DOCS, N_DOCS)
    assert task["source"].startswith("local:") and task["source"].endswith("ARC-Easy-test.jsonl")
    assert (mean["dataset"], mean["value"]) == ("zeroshot(arc_easy)", task["value"])
    assert runtime["metric"] == "runtime" and runtime["value"] > 0
    # task loss: the gold answer's bits per byte, averaged over documents, with its s.e.
    assert (loss["metric"], loss["dataset"], loss["n_docs"]) == ("task_loss", "arc_easy", N_DOCS)
    assert loss["value"] == pytest.approx(statistics.mean(bpb), rel=1e-5)
    assert loss["stderr"] == pytest.approx(statistics.stdev(bpb) / N_DOCS**0.5, rel=1e-4)
    assert task["task_loss"] == loss["value"] and task["stderr"] == task["acc_norm_stderr"]
    chance = statistics.mean(1 / len(d["choices"]["text"]) for d in docs)
    assert task["chance"] == loss["chance"] == pytest.approx(chance)


def test_task_loss_only_scores_the_gold_answer_alone(tiny_smol_folder, shared_data, tmp_path):
    """--task-loss-only makes one request per document and gives the same task loss as the
    full zero-shot evaluation (the same requests), on a 4-choice and a 2-choice task."""
    losses = {}
    for flags in ([], ["--task-loss-only"]):
        out = tmp_path / f"runs{len(flags)}"
        result = runner.invoke(app, ["evaluate", "--model", str(tiny_smol_folder), "--tasks",
                                     "arc_easy,piqa", "--limit", "6", "--data-dir",
                                     str(shared_data), "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
        (path,) = out.glob("*.json")
        record = json.loads(path.read_text())
        losses[bool(flags)] = {m["dataset"]: m for m in record["metrics"]
                               if m["metric"] == "task_loss"}
        kinds = {m["metric"] for m in record["metrics"]}
        assert ("accuracy" in kinds) is not bool(flags)
        assert record["config"]["eval"]["kind"] == ("task_loss" if flags else "extrinsic")
    for task in ("arc_easy", "piqa"):
        full, alone = losses[False][task], losses[True][task]
        assert alone["value"] == pytest.approx(full["value"], rel=1e-5)
        assert alone["stderr"] == pytest.approx(full["stderr"], rel=1e-4)
        assert alone["n_docs"] == full["n_docs"] == 6
    assert losses[True]["piqa"]["chance"] == 0.5


@pytest.mark.parametrize("args, message", [
    (["--tasks", "arc_esay"], "unknown zero-shot task 'arc_esay' (did you mean 'arc_easy'?)"),
    (["--tasks", "arc_easy", "--limit", "0"], "limit must be a positive number"),
    (["--tasks", "piqa"], "piqa/valid.jsonl"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, message, tiny_smol_folder, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "runs"
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_smol_folder), "--data-dir",
                                 str(empty), "--out", str(out), *args])
    assert isinstance(result.exception, ConfigError | DataError)
    assert message in str(result.exception)
    assert not out.exists()


def test_cli_prints_one_line_and_exits_2(tmp_path):
    complaw = Path(sys.executable).with_name("complaw")
    done = subprocess.run([str(complaw), "evaluate", "--model", "smollm2-135m", "--tasks",
                           "hellaswg", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "did you mean 'hellaswag'" in done.stderr and "valid: arc_challenge" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_config_round_trip():
    config = Extrinsic(tasks=("paper",), limit=50, options={"batch_size": 4}).resolve()
    assert config.tasks == ("arc_challenge", "arc_easy", "hellaswag", "mmlu", "piqa",
                            "winogrande")
    assert config.options == {"batch_size": 4, "num_fewshot": 0}
    assert evaluation_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert mean_label(config.tasks) == (
        "zeroshot(arc_challenge,arc_easy,hellaswag,mmlu,piqa,winogrande)")
    with pytest.raises(ConfigError, match="unknown extrinsic option.*shots.*num_fewshot"):
        Extrinsic(tasks=("piqa",), options={"shots": 5}).resolve()
    with pytest.raises(ConfigError, match="batch_size='8'.*must be int"):
        Extrinsic(tasks=("piqa",), options={"batch_size": "8"}).resolve()


def test_prunenet_checkpoint_runs_in_lm_eval_cli(smol_tokenizer, shared_data, tmp_path):
    model = tiny_smol_llama(intermediate=64)
    result = compress(model, "prunenet", 0.5, policy="random")
    folder = save_compressed(result, tmp_path / "pruned", smol_tokenizer)
    tasks = tmp_path / "tasks"
    (name,) = write_tasks(tasks, ["arc_easy"], shared_data)
    lm_eval = Path(sys.executable).with_name("lm_eval")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={folder},dtype=float32",
         "--tasks", name, "--include_path", str(tasks), "--limit", "5", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "arc_easy_local" in done.stdout and "acc_norm" in done.stdout


def test_slicegpt_checkpoint_runs_through_hflm(smol_tokenizer, shared_data, tmp_path):
    """SliceGPT's custom layers cannot be built by from_pretrained; complaw hands the loaded
    model to lm-eval, so its checkpoints evaluate all the same."""
    calibration = torch.randint(0, 49152, (4, 32), generator=torch.Generator().manual_seed(0))
    result = compress(tiny_smol_llama(), "slicegpt", 0.25, calibration)
    folder = save_compressed(result, tmp_path / "sliced", smol_tokenizer)
    out = tmp_path / "runs"
    run = runner.invoke(app, ["evaluate", "--model", str(folder), "--tasks", "arc_easy",
                              "--limit", "3", "--data-dir", str(shared_data), "--out", str(out)])
    assert run.exit_code == 0, run.output
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    assert record["config"]["compression"]["method"] == "slicegpt"
    assert record["metrics"][0]["n_docs"] == 3
