"""Every `complaw` command the README shows exists, with the options it shows."""

import re
from pathlib import Path

import typer

from complaw.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """Each `complaw SUB ...` the README shows (code lines and backticked table cells), split
    into words with [optional] brackets removed."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"(?:`|bin/)complaw ([a-z][^`\n]*)", text)
    return [re.sub(r"[\[\]]", " ", line).split() for line in found]


def test_every_readme_command_exists_with_its_options():
    cli = typer.main.get_command(app)
    commands = readme_commands()
    assert {"run", "status", "report", "compress", "recover", "evaluate", "speed", "tasks",
            "fit", "predict"} <= {words[0] for words in commands}
    for words in commands:
        sub = cli.commands.get(words[0])
        assert sub is not None, f"README shows `complaw {words[0]}`, which does not exist"
        if hasattr(sub, "commands"):  # a group: `complaw design replay ...`
            sub = sub.commands.get(words[1])
            assert sub is not None, f"README shows `complaw {' '.join(words[:2])}`, unknown"
        known = {o for p in sub.params for o in (*p.opts, *p.secondary_opts)}
        shown = {w.rstrip(",.;") for w in words[1:] if w.startswith("--")}
        assert shown <= known, f"complaw {words[0]}: README shows unknown {shown - known}"
