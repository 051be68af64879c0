"""Bad and unusual inputs to `FairnessAwareAveraging`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, equal, good, identical, ids, rejected_load, run
from torch import nn

from torch_absld import FairnessAwareAveraging, PGDConfig

C = 3
T = torch.tensor
CLEAN = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _model(out: int = C) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, out))


def _fawa(**kwargs: object) -> FairnessAwareAveraging:
    kwargs.setdefault("start_epoch", 0)
    kwargs.setdefault("threshold", 0.0)
    return FairnessAwareAveraging(_model(), C, **kwargs)  # type: ignore[arg-type]


def _record(clean: torch.Tensor, robust: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    fawa = _fawa()
    fawa.record(clean, robust, target)
    return fawa.accumulator


def _batches(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(n, 3, 2, 2, generator=g), torch.arange(n) % C)]


def _load(**changes: object) -> object:
    state = _fawa().state_dict()
    state.update(changes)
    target = _fawa()
    target.record(CLEAN, CLEAN, T([0, 1, 2]))  # a partial epoch that a rejected load must keep
    return rejected_load(target, state)


CASES: list[Case] = [
    bad("decay=0", ValueError, r"`decay` in \(0, 1\)", lambda: _fawa(decay=0.0)),
    bad("decay=1", ValueError, r"`decay` in \(0, 1\)", lambda: _fawa(decay=1.0)),
    bad("decay=1.5", ValueError, r"`decay` in", lambda: _fawa(decay=1.5)),
    bad("decay='a'", TypeError, "`decay` to be a real number", lambda: _fawa(decay="a")),
    good("decay=np.float64", lambda: _fawa(decay=np.float64(0.9)), lambda f: equal(f.decay, 0.9)),
    bad("threshold=1.5", ValueError, r"`threshold` in \[0, 1\]", lambda: _fawa(threshold=1.5)),
    bad("start_epoch=-1", ValueError, "`start_epoch` to be an int >= 0", lambda: _fawa(start_epoch=-1)),
    bad("worst_fraction=0", ValueError, r"`worst_fraction` in \(0, 1\]", lambda: _fawa(worst_fraction=0.0)),
    bad("seed=1.5", ValueError, "`seed` to be an int >= 0", lambda: _fawa(seed=1.5)),
    bad("model None", TypeError, "`model` to be an nn.Module", lambda: FairnessAwareAveraging(None, C)),  # type: ignore[arg-type]
    bad("attack a dict", TypeError, "`attack` to be a PGDConfig", lambda: _fawa(attack={"eps": 0.1})),
    bad(
        "attack with a normal start",
        ValueError,
        "`random_start` to be 'uniform' or None",
        lambda: _fawa(attack=PGDConfig(eps=0.1, random_start="normal")),
    ),
    good(
        "num_classes=np.int64",
        lambda: FairnessAwareAveraging(_model(), np.int64(C)),
        lambda f: equal(f.num_classes, C),
    ),
    # record: a validation batch
    good(
        "record uint8 labels",
        lambda: _record(CLEAN, CLEAN, T([0, 1, 2], dtype=torch.uint8)),
        lambda acc: identical(acc, _record(CLEAN, CLEAN, T([0, 1, 2]))),
    ),
    bad(
        "record logits 1-D",
        ValueError,
        r"`clean_logits` of shape \(N, C\)",
        lambda: _record(T([1.0, 2.0, 3.0]), T([1.0, 2.0, 3.0]), T([0, 1, 2])),
    ),
    bad(
        "record logits of another C",
        ValueError,
        r"`clean_logits` and `robust_logits` of shape \(N, 3\)",
        lambda: _record(torch.zeros(3, 4), torch.zeros(3, 4), T([0, 1, 2])),
    ),
    bad("record labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _record(CLEAN, CLEAN, T([0, 1, 3]))),
    # step
    bad("step validation an int", TypeError, "`validation` to be an iterable", lambda: _fawa().step(5)),  # type: ignore[arg-type]
    bad("step validation a string", TypeError, "`validation` to be an iterable", lambda: _fawa().step("batches")),  # type: ignore[arg-type]
    good("step validation batches", lambda: _fawa().step(_batches()), lambda accepted: equal(accepted, True)),
    bad(
        "step validation missing a class",
        ValueError,
        r"classes \[2\] have no sample",
        lambda: _fawa().step(_batches(2)),
    ),
    # loading
    bad(
        "load averaged weights of another shape",
        ValueError,
        r"loaded averaged weights `module.1.weight` of shape \(3, 12\)",
        lambda: _load(**{"module.1.weight": torch.zeros(2, 12)}),
    ),
    bad(
        "load NaN averaged weights",
        ValueError,
        "loaded averaged weights `module.1.bias` to be finite",
        lambda: _load(**{"module.1.bias": torch.full((C,), float("nan"))}),
    ),
    bad(
        "load bad counters",
        ValueError,
        "'epochs_stepped', 'accepted' >= 0",
        lambda: _load(_extra_state={"epochs_stepped": 0, "accepted": -1, "last_worst": 0.0}),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
