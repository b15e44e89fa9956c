"""Third-party progress bars, warnings and logs are silenced by `quiet_libraries` and in
`complaw run` unless --verbose (each case in a fresh interpreter: silencing is for good)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Running loglikelihood requests", "stub_arg is deprecated", "stub_option is deprecated")


def python(code: str, *args: str) -> str:
    """stdout + stderr of `code` run in a fresh interpreter on this checkout."""
    env = {k: v for k, v in os.environ.items()  # an earlier quiet_libraries() set these here
           if k not in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY")}
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_quiet_libraries_hides_bars_warnings_and_logs():
    noise = "from tests.unit.study.stub_stages import noise; noise()"
    loud = python(noise)
    assert all(text in loud for text in NOISE), loud
    quiet = python(f"from complaw.progress import quiet_libraries; quiet_libraries(); {noise}")
    assert not any(text in quiet for text in NOISE), quiet


def test_run_is_quiet_unless_verbose(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [a]\nplugins: [tests.unit.study.stub_stages]\n"
                    "evaluations: {tick: {options: {noisy: true}}}\n")
    run = "from complaw.cli import main; main()"
    args = ("run", str(spec), "--no-report", "--out")
    quiet = python(run, *args, str(tmp_path / "quiet"))
    assert "1 experiment(s) done" in quiet and not any(text in quiet for text in NOISE), quiet
    verbose = python(run, *args, str(tmp_path / "verbose"), "--verbose")
    assert all(text in verbose for text in NOISE), verbose
