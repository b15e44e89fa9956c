"""Fixtures of the recovery tests: one torch thread, tiny compressed checkpoints."""

from __future__ import annotations

import pytest
from tests.unit.compress.compress_fixtures import one_thread  # noqa: F401  (autouse)
from tests.unit.recover.recover_fixtures import checkpoint


@pytest.fixture
def pruned(tmp_path):
    return checkpoint(tmp_path, "llama", "prunenet", "pruned", policy="random")


@pytest.fixture
def sliced(tmp_path):
    return checkpoint(tmp_path, "qwen2", "slicegpt", "sliced")
