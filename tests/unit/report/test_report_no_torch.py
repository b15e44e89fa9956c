"""complaw.report and the report command never import torch (a report needs only records)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_report_without_torch(partial_study, tmp_path):
    code = textwrap.dedent(
        """
        import sys, types, pathlib
        import complaw
        pkg = types.ModuleType("complaw.cli")
        pkg.__path__ = [str(pathlib.Path(complaw.__file__).parent / "cli")]
        sys.modules["complaw.cli"] = pkg
        import complaw.cli.report
        import complaw.laws, complaw.report
        from typer.testing import CliRunner
        from complaw.cli.app import app
        out = CliRunner().invoke(app, ["report", sys.argv[1], "--out", sys.argv[2]])
        assert out.exit_code == 0, out.output
        import matplotlib
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH" if bad else "CLEAN", bad[:3], matplotlib.get_backend())
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(partial_study), str(tmp_path / "rep")],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("CLEAN"), res.stdout
    assert (tmp_path / "rep" / "index.html").is_file()
