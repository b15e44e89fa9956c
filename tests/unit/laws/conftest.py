"""Fixtures shared by the laws tests: synthetic tables drawn from known laws."""

import pandas as pd
import pytest
from law_synth import acc_df, loss_df


@pytest.fixture
def acc_table() -> pd.DataFrame:
    return acc_df()


@pytest.fixture
def loss_table() -> pd.DataFrame:
    return loss_df()
