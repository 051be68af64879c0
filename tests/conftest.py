"""Shared pytest configuration: makes helper modules in tests/ importable and skips CUDA tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from torch_absld._internal import checks

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Run every test on one intra-op thread, then restore the setting.

    The tests use tiny tensors, where intra-op threads only add synchronisation; on a busy
    2-core machine two threads made small convolution backward passes many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_deferred_flags_after_a_test():
    """Drop value flags a test deferred and never read (unread: a test's leftovers raise in no other test)."""
    yield
    checks._pending.checks = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
