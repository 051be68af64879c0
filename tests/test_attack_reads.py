"""Each public attack entry point reads the device once per call (its value checks), 0 times unchecked."""

from __future__ import annotations

import pytest
import torch
from _reads import count_reads
from torch import nn

from torch_absld import KLPGDAttack, kl_pgd, pgd
from torch_absld._internal.checks import defer, probability_flag
from torch_absld.attack import CountingObjective, EarlyStopping, LogitsAndInput, attack_objective
from torch_absld.attack.engine import _pgd

MODEL = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
X = torch.rand(6, 3, 2, 2)
Y = torch.tensor([0, 1, 2, 3, 0, 1])
P = torch.softmax(torch.randn(6, 4), dim=1)


def _counting(**kwargs):
    counter = CountingObjective("ce")
    counter.reset(Y)
    return pgd(MODEL, X, Y, objective=counter, steps=3, **kwargs)


def _early_stopping(**kwargs):
    stopper = EarlyStopping()
    stopper.reset(Y, X)
    return pgd(LogitsAndInput(MODEL), X, P, objective=stopper, steps=3, **kwargs)


CALLS = {
    "pgd ce": lambda **kw: pgd(MODEL, X, Y, steps=3, **kw),
    "pgd per-sample eps": lambda **kw: pgd(MODEL, X, Y, eps=torch.full((6,), 0.1), steps=3, **kw),
    "kl_pgd": lambda **kw: kl_pgd(MODEL, X, P, steps=3, **kw),
    "KLPGDAttack.forward": lambda **kw: KLPGDAttack(MODEL, steps=3, **kw)(X, P),
    "attack_objective": lambda **kw: attack_objective(MODEL(X), Y, "cw", **kw),
    "pgd CountingObjective": _counting,
    "pgd EarlyStopping": _early_stopping,
}


@pytest.mark.parametrize("name", CALLS)
def test_one_read_per_call_and_none_unchecked(name):
    with count_reads() as reads:
        CALLS[name]()
    assert reads.count == 1, reads.calls
    with count_reads() as reads:
        CALLS[name](validate_args=False)
    assert reads.count == 0, reads.calls


def test_private_twins_read_nothing():
    attack = KLPGDAttack(MODEL, steps=3)
    with count_reads() as reads:
        attack._forward(X, Y)
        _pgd(MODEL, X, P, steps=3)
    assert reads.count == 0


def test_the_forward_reads_deferred_flags_with_its_own():
    bad = P.clone()
    bad[0, 0] = -1.0
    defer([probability_flag(bad, "soft_labels")])
    with count_reads() as reads, pytest.raises(ValueError, match="`soft_labels` to hold probability vectors"):
        KLPGDAttack(MODEL, steps=1)(X, Y)
    assert reads.count == 1
