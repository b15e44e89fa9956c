"""What the CLI prints when its output is not a terminal (a pipe, a file): tables at full width."""

from __future__ import annotations

from typer.testing import CliRunner

from complaw.cli import app
from complaw.evaluate.tasks import TASKS


def test_piped_table_cells_are_whole_on_one_line(tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    result = CliRunner().invoke(app, ["tasks", "--data-dir", str(data)])  # output: not a tty
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in TASKS:
        [row] = [line for line in lines if f" {name} " in line]
        assert f"missing {TASKS.get(name).missing_files(data)[0]}" in row


def test_piped_help_is_not_cut():
    """rich would cut option help at 80 columns with '…' when piped."""
    result = CliRunner().invoke(app, ["fit", "--help"])
    assert result.exit_code == 0 and "…" not in result.output
    assert "chosen variance-optimally)" in result.output
