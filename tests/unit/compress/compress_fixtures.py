"""A fixture of the compression tests; a test module imports `one_thread` to apply it."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one torch thread: on a busy 2-core machine, OpenMP threads fighting over tiny
    tensors make small SVDs and matmuls about ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
