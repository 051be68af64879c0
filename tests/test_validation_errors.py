"""Bad and unusual inputs to `class_correct` and `validation_pass`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, equal, good, identical, ids, run
from torch import nn

from torch_absld import PGDConfig
from torch_absld.validation import class_correct, validation_pass

C = 3
T = torch.tensor
CLEAN = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
ROBUST = T([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
ATTACK = PGDConfig(eps=0.1, step_size=0.05, steps=1, random_start="uniform")


def _model(out: int = C) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, out))


def _batch(n: int = 4, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 2, 2, generator=g), torch.arange(n) % C if labels is None else labels


def _pass(batches: object = None, record: object = None, **kwargs: object) -> object:
    seen: list[torch.Tensor] = []
    kwargs.setdefault("config", ATTACK)

    def keep(clean: torch.Tensor, robust: torch.Tensor, target: torch.Tensor) -> None:
        seen.append(class_correct(clean, robust, target))

    count = validation_pass(
        _model(), [_batch()] if batches is None else batches, keep if record is None else record, **kwargs
    )  # type: ignore[arg-type]
    return count, seen


def _nan_batch() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _batch()
    x[0, 0, 0, 0] = float("nan")
    return x, y


CASES: list[Case] = [
    good(
        "correct by hand",
        lambda: class_correct(CLEAN, ROBUST, T([0, 1, 2])),
        lambda out: identical(out, T([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)),
    ),
    good(
        "correct uint8 labels",
        lambda: class_correct(CLEAN, ROBUST, T([0, 1, 2], dtype=torch.uint8)),
        lambda out: identical(out, class_correct(CLEAN, ROBUST, T([0, 1, 2]))),
    ),
    bad(
        "correct logits 1-D",
        ValueError,
        r"`clean_logits` of shape \(N, C\)",
        lambda: class_correct(T([1.0, 2.0]), T([1.0, 2.0]), T([0, 1])),
    ),
    bad(
        "correct N mismatch",
        ValueError,
        r"`target` of shape \(N,\) with N = 3",
        lambda: class_correct(CLEAN, ROBUST, T([0, 1])),
    ),
    bad(
        "correct robust of another C",
        ValueError,
        "`clean_logits`, `robust_logits` of one shape",
        lambda: class_correct(CLEAN, torch.zeros(3, 4), T([0, 1, 2])),
    ),
    bad(
        "correct labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: class_correct(CLEAN, ROBUST, T([0.0, 1.0, 2.0])),
    ),
    bad(
        "correct labels >= C",
        ValueError,
        r"`target` values in \[0, 3\)",
        lambda: class_correct(CLEAN, ROBUST, T([0, 1, 3])),
    ),
    # the pass
    good("pass counts the samples", lambda: _pass([_batch(4), _batch(2)]), lambda out: equal(out[0], 6)),  # type: ignore[index]
    good("pass an empty batch", lambda: _pass([_batch(0)]), lambda out: equal(out[0], 0)),  # type: ignore[index]
    good(
        "pass uint8 labels",
        lambda: _pass([_batch(labels=T([0, 1, 2, 0], dtype=torch.uint8))]),
        lambda out: identical(out[1][0], _pass()[1][0]),  # type: ignore[index]
    ),
    good("pass seed=np.int64", lambda: _pass(seed=np.int64(3)), lambda out: equal(out[0], 4)),  # type: ignore[index]
    bad("pass config a dict", TypeError, "`config` to be a PGDConfig", lambda: _pass(config={"eps": 0.1})),
    bad(
        "pass config with a normal start",
        ValueError,
        "`random_start` to be 'uniform' or None",
        lambda: _pass(config=PGDConfig(eps=0.1, random_start="normal")),
    ),
    bad("pass record None", TypeError, "`record` to be a callable", lambda: _pass(record=1)),
    bad("pass seed=1.5", ValueError, "`seed` to be an int >= 0", lambda: _pass(seed=1.5)),
    bad("pass seed=-1", ValueError, "`seed` to be an int >= 0", lambda: _pass(seed=-1)),
    bad("pass batches an int", TypeError, "`batches` to be an iterable", lambda: _pass(batches=3)),
    bad("pass batches a tensor", TypeError, "`batches` to be an iterable", lambda: _pass(batches=torch.zeros(2, 3))),
    bad(
        "pass a batch of one tensor", TypeError, r"\(input, target\) pairs", lambda: _pass(batches=[torch.zeros(2, 12)])
    ),
    bad("pass device 'nonsense'", ValueError, "`device` to be a torch.device", lambda: _pass(device="nonsense")),
    bad("pass input NaN", ValueError, "`input` to be finite", lambda: _pass(batches=[_nan_batch()])),
    bad(
        "pass labels >= C",
        ValueError,
        r"`target` values in \[0, 3\)",
        lambda: _pass(batches=[_batch(labels=T([0, 1, 2, 3]))]),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
