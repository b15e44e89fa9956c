"""Fixtures shared by the laws tests: synthetic tables drawn from known laws."""

import sys

import pandas as pd
import pytest
from law_synth import acc_df, loss_df

from complaw.cli import main


@pytest.fixture
def acc_table() -> pd.DataFrame:
    return acc_df()


@pytest.fixture
def loss_table() -> pd.DataFrame:
    return loss_df()


@pytest.fixture
def refused(monkeypatch, capsys):
    """``refused(args, needle, folder)`` runs ``complaw ARGS`` and checks that it refuses: exit
    2, one line on stderr naming ``needle``, nothing on stdout, nothing written in ``folder``."""

    def check(args: list[str], needle: str, folder) -> None:
        before = sorted(p.name for p in folder.iterdir())
        monkeypatch.setattr(sys, "argv", ["complaw", *args])
        with pytest.raises(SystemExit) as info:
            main()
        assert info.value.code == 2
        out = capsys.readouterr()
        assert out.out == "" and needle in out.err and len(out.err.strip().splitlines()) == 1
        assert sorted(p.name for p in folder.iterdir()) == before

    return check
