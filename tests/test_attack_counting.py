from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _baselines import hand_pgd, uniform_start
from _models import tiny_batch, tiny_cnn

from torch_absld import pgd
from torch_absld.attack import CountingObjective

C = 5
EPS, STEP = 8 / 255, 2 / 255


def test_counts_the_correct_iterates_before_each_step():
    model = tiny_cnn(C, seed=3).eval()
    x, _ = tiny_batch(16, C)
    y = model(x).argmax(dim=1)  # correct at the clean point ...
    y[::3] = (y[::3] + 1) % C  # ... except every third sample
    counter = CountingObjective("ce")
    counter.reset(y)
    got = pgd(model, x, y, objective=counter, steps=4, random_start="uniform", seed=7)
    # By hand: kappa_i = number of iterates x^0..x^{K-1} predicted as y_i, from the gradient's forward.
    kappa = torch.zeros(16)

    def count(logits):
        kappa.add_((logits.argmax(dim=1) == y).float())

    start = uniform_start(x, EPS, seed=7)
    want = hand_pgd(model, x, start, lambda z: F.cross_entropy(z, y, reduction="sum"), 4, EPS, STEP, count)
    assert torch.equal(got, want)
    assert torch.equal(counter.counts, kappa)
    assert 0 < kappa.sum() < 4 * 16  # some samples flipped, some did not
    counter.reset(y)
    assert counter.counts.sum() == 0


def test_kl_objective_and_errors():
    model = tiny_cnn(C, seed=3)
    x, y = tiny_batch(8, C)
    soft = torch.softmax(torch.randn(8, C), dim=1)
    counter = CountingObjective("kl")
    counter.reset(y)
    assert torch.equal(pgd(model, x, soft, objective=counter, steps=2, seed=0), pgd(model, x, soft, steps=2, seed=0))
    assert counter.counts.max() <= 2
    assert repr(counter) == "CountingObjective('kl')"
    with pytest.raises(ValueError, match="`objective` to be one of 'ce', 'kl', 'cw'"):
        CountingObjective("auto")  # type: ignore[arg-type]
    counter.reset(y[:4])
    with pytest.raises(RuntimeError, match=r"logits for 4 samples as given to `reset\(labels\)`"):
        pgd(model, x, soft, objective=counter, steps=1)
