"""complaw.laws (and the laws CLI module) never import torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_laws_without_torch():
    res = _fresh(
        """
        import sys
        import complaw.laws
        from complaw.laws import fit, plan, get_law, critical_ratio
        critical_ratio(get_law("paper:llama-3-8b:extrinsic"), 0.8)
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH" if bad else "CLEAN", bad[:3])
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("CLEAN"), res.stdout


def test_cli_laws_module_without_torch():
    """Load complaw.cli.laws alone (not its siblings, which may need torch)."""
    res = _fresh(
        """
        import sys, types, pathlib
        import complaw
        pkg = types.ModuleType("complaw.cli")
        pkg.__path__ = [str(pathlib.Path(complaw.__file__).parent / "cli")]
        sys.modules["complaw.cli"] = pkg
        import complaw.cli.laws
        from typer.testing import CliRunner
        from complaw.cli.app import app
        out = CliRunner().invoke(app, ["critical", "--law", "paper:llama-3-8b:extrinsic",
                                       "--sigma", "0.8", "--json"])
        assert out.exit_code == 0, out.output
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH" if bad else "CLEAN", bad[:3])
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("CLEAN"), res.stdout
