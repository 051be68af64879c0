"""Counting reads from the device: every way a tensor's values reach Python is one read (a host sync on a GPU)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


class ReadCounter:
    """The number of reads seen inside :func:`count_reads`, and where they came from."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def count(self) -> int:
        return len(self.calls)


@contextlib.contextmanager
def count_reads() -> Iterator[ReadCounter]:
    """Count every ``item``, ``tolist``, ``numpy``, ``bool``, ``int``, ``float`` and ``index`` of a tensor.

    A nested read (``bool`` calling ``item`` inside torch) counts once: the outermost call.
    """
    counter = ReadCounter()
    originals = {name: getattr(torch.Tensor, name) for name in _READS}
    depth = 0

    def wrap(name: str):
        original = originals[name]

        def counted(self, *args, **kwargs):
            nonlocal depth
            if depth == 0:
                counter.calls.append(name)
            depth += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth -= 1

        return counted

    for name in _READS:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield counter
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
