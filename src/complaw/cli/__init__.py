"""Command-line interface. Each module in this package adds its commands to `app`.

Adding a command (group) is a new module here; `main` imports them all. Commands parse, call one
library function and print; they hold no logic of their own. Modules import torch-based code
inside their commands, so that `complaw fit/predict/plan` work where torch is not installed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from rich.markup import escape

from complaw.cli.app import app, err_console
from complaw.errors import ComplawError

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app":
        importlib.import_module(f"{__name__}.{_module.name}")


def main() -> None:
    """Entry point: runs the app; a ComplawError becomes one red line and exit code 2."""
    try:
        app()
    except ComplawError as exc:
        # escaped: a message's own brackets ("complaw[ray]") are not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
