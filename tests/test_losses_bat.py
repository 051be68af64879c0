from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _baselines import ce_rows, grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld.losses.bat import BATLoss, bat_loss, uniform_kl

C, N = 5, 9


def _batch(seed: int = 0):
    target = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(seed + 100))
    return logits64(N, C, seed), logits64(N, C, seed + 1), logits64(N, C, seed + 2), target


@pytest.mark.parametrize(("beta", "weight"), [(6.0, 1.0), (2.0, 0.5)])
def test_value_and_gradients_against_the_equation(beta, weight):
    clean, first_adv, last_clean, target = _batch()
    got = bat_loss(first_adv, clean, last_clean, target, beta=beta, uniform_weight=weight)
    uniform = torch.full((N, C), 1 / C, dtype=torch.float64)
    want = (
        ce_rows(last_clean, target)
        + beta * kl_rows(softmax64(clean), softmax64(first_adv))
        + weight * (kl_rows(softmax64(last_clean), uniform) + kl_rows(softmax64(first_adv), uniform))
    ).mean()
    assert_close(got, want)
    inputs = (first_adv, clean, last_clean)
    for g, w in zip(grads(got, *inputs), grads(want, *inputs), strict=True):
        assert_close(g, w)


def test_equals_the_authors_written_form():
    """``BAT_loss`` of ``train.py``: the uniform target as the softmax of constant logits, ``KLDivLoss(size_average
    =False)`` divided by the batch size, the cross-entropy mean."""
    clean, first_adv, last_clean, target = _batch(3)
    kl = nn.KLDivLoss(reduction="sum")
    uniform_logits = torch.ones_like(first_adv) * 0.1
    authors = (
        F.cross_entropy(last_clean, target)
        + 6.0 * kl(F.log_softmax(first_adv, dim=1), F.softmax(clean, dim=1)) / N
        + kl(F.log_softmax(uniform_logits, dim=1), F.softmax(last_clean, dim=1)) / N
        + kl(F.log_softmax(uniform_logits, dim=1), F.softmax(first_adv, dim=1)) / N
    )
    got = bat_loss(first_adv, clean, last_clean, target)
    assert_close(got, authors)
    inputs = (first_adv, clean, last_clean)
    for g, w in zip(grads(got, *inputs), grads(authors, *inputs), strict=True):
        assert_close(g, w)


def test_uniform_kl_reductions_and_module():
    clean, first_adv, last_clean, target = _batch(5)
    assert_close(uniform_kl(torch.zeros(3, 7)), torch.zeros(3))
    assert_close(uniform_kl(torch.tensor([[1e4, 0.0, 0.0, 0.0]])), torch.tensor([math.log(4)]))
    loss_fn = BATLoss(beta=3.0, uniform_weight=2.0)
    terms = loss_fn.terms(first_adv, clean, last_clean, target)
    assert torch.equal(loss_fn(first_adv, clean, last_clean, target), terms[0] + 3.0 * terms[1] + 2.0 * terms[2])
    want = bat_loss(first_adv, clean, last_clean, target, beta=3.0, uniform_weight=2.0)
    assert_close(loss_fn(first_adv, clean, last_clean, target), want)
    none = bat_loss(first_adv, clean, last_clean, target, reduction="none")
    assert_close(none.mean(), bat_loss(first_adv, clean, last_clean, target))
    assert_close(none.sum(), bat_loss(first_adv, clean, last_clean, target, reduction="sum"))
    assert "uniform_weight=2" in repr(loss_fn)


def test_extreme_logits_low_precision_and_errors():
    z = torch.tensor([[100.0, -100.0], [-100.0, 100.0]])
    loss = bat_loss(z.bfloat16(), z.bfloat16(), z.bfloat16(), torch.tensor([0, 1]))
    assert loss.dtype == torch.float32
    assert_close(loss, torch.tensor(2 * math.log(2)))  # no CE, no TRADES KL; two one-hot predictions vs uniform
    with pytest.raises(ValueError, match=r"`student_last_clean` of one shape"):
        bat_loss(z, z, z[:, :1], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="`uniform_weight` >= 0"):
        BATLoss(uniform_weight=-1.0)
