"""Bad and unusual inputs to the steps that read a validation split each epoch (`ValidatedStep`: FRL, CFA)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import C, batch, build

METHODS = ("frl", "cfa")


def _split(n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(batch(n), torch.arange(n) % C)]


def _options(method: str, **kwargs: object) -> dict[str, object]:
    return {"fawa": True, "start_epoch": 0, **kwargs} if method == "cfa" else kwargs


def _epoch_end(method: str, validation: object = None, **kwargs: object) -> object:
    step = build(method, **_options(method, **kwargs))
    return step.on_epoch_end(validation)


def _rows(method: str) -> list[Case]:
    return [
        bad(
            f"{method} validation an int",
            TypeError,
            "`validation` to be an iterable",
            lambda: build(method, **_options(method, validation=3)),
        ),
        bad(
            f"{method} validation a string",
            TypeError,
            "`validation` to be an iterable",
            lambda: build(method, **_options(method, validation="x")),
        ),
        bad(
            f"{method} validation_steps=0",
            ValueError,
            "`validation_steps` to be an int >= 1",
            lambda: build(method, validation_steps=0),
        ),
        bad(
            f"{method} validation_seed=-1",
            ValueError,
            "`validation_seed` to be an int >= 0",
            lambda: build(method, validation_seed=-1),
        ),
        bad(
            f"{method} epoch end without validation", RuntimeError, "pass\\s+`validation=`", lambda: _epoch_end(method)
        ),
        bad(f"{method} epoch end validation an int", TypeError, "iterable", lambda: _epoch_end(method, 3)),
        bad(
            f"{method} validation missing a class",
            ValueError,
            r"classes \[2, 3\] have no sample",
            lambda: _epoch_end(method, _split(2)),
        ),
        bad(
            f"{method} validation labels >= C",
            ValueError,
            r"`target` values in \[0, 4\)",
            lambda: _epoch_end(method, [(batch(4), torch.tensor([0, 1, 2, 4]))]),
        ),
        bad(
            f"{method} validation input out of range",
            ValueError,
            r"`input` values in \[clip_min, clip_max\]",
            lambda: _epoch_end(method, [(batch(4) + 2, torch.arange(4))]),
        ),
        good(
            f"{method} validation uint8 labels",
            lambda: _epoch_end(method, [(batch(4), torch.arange(4, dtype=torch.uint8))]),
            lambda s: _shape(s, (C,)),
        ),
        good(
            f"{method} validation of empty batches and a full one",
            lambda: _epoch_end(method, [(batch(0), torch.zeros(0, dtype=torch.long)), *_split()]),
            lambda s: _shape(s, (C,)),
        ),
    ]


CASES: list[Case] = [row for method in METHODS for row in _rows(method)]


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
