"""The layers: each package imports only those below it (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# module -> packages that importing it must not load
LAYERS = {
    "complaw.recover": ("complaw.study", "complaw.experiment"),
    "complaw.experiment.pipeline": ("complaw.study",),
    "complaw.experiment.records": ("torch", "complaw.study"),
    "complaw.report.study": ("torch", "complaw.study"),
}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_module_imports_nothing_above_it(module):
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stdout)
    bad = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in LAYERS[module])]
    assert not bad, f"importing {module} loads {bad[:5]}"
