"""Ctrl-C, then kill -9 of the runner mid-grid, then run again: finished records intact, none
recomputed, the study completes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def complaw(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    code = "from complaw.cli import main; main()"
    # Ctrl-C as at a terminal: a shell starts background jobs (a CI run with `&`) with SIGINT
    # ignored, which the runner would inherit
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kwargs)


def test_kill_9_mid_grid_then_resume(tmp_path):
    log = tmp_path / "executions.log"
    models = [f"m{i:02d}" for i in range(12)]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "models": models, "plugins": ["tests.unit.study.stub_stages"],
        "evaluations": {"tick": {"options": {"log": str(log), "seconds": 0.3}}},
    }))
    study = tmp_path / "study"
    records = study / "records"

    def stop_after(n_records, sig):
        runner = complaw("run", spec, "--out", study)
        deadline = time.monotonic() + 90
        while len(list(records.glob("*.json"))) < n_records:
            assert runner.poll() is None, runner.stdout.read().decode()
            assert time.monotonic() < deadline, "the runner made no progress"
            time.sleep(0.05)
        runner.send_signal(sig)
        return runner.communicate(timeout=60)[0].decode(), runner.returncode

    output, code = stop_after(2, signal.SIGINT)  # Ctrl-C: a clean stop
    assert code == 130 and "run the same command again to resume" in output, output
    assert not list((study / "records").glob(".*.tmp"))
    stop_after(4, signal.SIGKILL)
    finished = {p.name: p.read_bytes() for p in records.glob("*.json")}
    assert 3 <= len(finished) < len(models)  # killed mid-grid
    done_models = {json.loads(b)["config"]["model"] for b in finished.values()}
    first_run = log.read_text().split()

    again = complaw("run", spec, "--out", study)
    output = again.communicate(timeout=120)[0].decode()
    assert again.returncode == 0, output
    second_run = log.read_text().split()[len(first_run):]
    assert not set(second_run) & done_models  # nothing finished was computed again
    assert sorted(set(first_run) | set(second_run)) == models  # the study completed
    for name, content in finished.items():
        assert (records / name).read_bytes() == content  # finished records untouched
    assert len(list(records.glob("*.json"))) == len(models)
    assert all(json.loads(p.read_text())["status"] == "ok" for p in records.glob("*.json"))
