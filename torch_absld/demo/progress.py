"""Progress bars (tqdm) for the demo's training phases, or nothing when quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .train import EpochCallback

__all__ = ["Progress"]


def _ignore(epoch: int, metrics: dict[str, float]) -> None:
    del epoch, metrics


def _ignore_count(count: int) -> None:
    del count


def _ignore_line(line: str) -> None:
    del line


class Progress:
    """Creates progress bars for the training phases; ``enabled=False`` shows nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._tqdm: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError as error:
                raise ImportError(
                    'Progress bars need tqdm: pip install "torch-absld[demo]" (or pass --quiet)'
                ) from error
            self._tqdm = tqdm

    @contextmanager
    def bar(self, total: int, description: str) -> Iterator[EpochCallback]:
        """A callback ``(epoch, metrics)`` that advances a bar of ``total`` epochs."""
        if not self.enabled:
            yield _ignore
            return
        bar = self._tqdm(total=total, desc=description, unit="epoch", dynamic_ncols=True)

        def advance(epoch: int, metrics: dict[str, float]) -> None:
            del epoch
            bar.set_postfix({key: f"{value:.3f}" for key, value in metrics.items()}, refresh=False)
            bar.update(1)

        try:
            yield advance
        finally:
            bar.close()

    @contextmanager
    def counter(self, total: int, description: str) -> Iterator[tuple[Callable[[int], None], Callable[[str], None]]]:
        """``(advance, write)``: ``advance(n)`` moves a bar of ``total`` epochs; ``write(line)`` prints above it."""
        if not self.enabled:
            yield _ignore_count, _ignore_line
            return
        bar = self._tqdm(total=total, desc=description, unit="epoch", dynamic_ncols=True)

        def advance(count: int) -> None:
            bar.update(count)

        def write(line: str) -> None:
            bar.write(line, file=sys.stderr)  # with the bars: stdout keeps only the results

        try:
            yield advance, write
        finally:
            bar.close()
