"""The shared tests take their families from the adapter registry: a family registered only in
the tests (tests/unit/extra_family.py, a pytest plugin) is tested like the shipped ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SHARED = ["tests/unit/test_models.py", "tests/unit/test_intrinsic.py",
          "tests/unit/compress/test_layerdrop.py", "tests/unit/recover/test_recover_train.py"]


def test_a_family_registered_in_a_test_runs_the_shared_tests():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "tests.unit.extra_family", "-k", "qwen3",
         "-p", "no:cacheprovider", *SHARED],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    passed = [line for line in done.stdout.splitlines() if "qwen3" in line and "PASSED" in line]
    for module in SHARED:  # every shared module ran tests of the new family
        assert any(line.startswith(module) for line in passed), module
    assert len(passed) >= 15
