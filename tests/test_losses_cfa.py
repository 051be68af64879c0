from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _baselines import ce_rows, grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld.losses.cfa import CFALoss, cfa_loss
from torch_absld.losses.trades import trades_loss

C, N = 5, 9


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed + 100)
    target = torch.randint(0, C, (N,), generator=g)
    class_beta = 6.0 * (0.5 + torch.rand(C, generator=g, dtype=torch.float64))  # (lambda2 + t_k) * beta
    return logits64(N, C, seed), logits64(N, C, seed + 1), target, class_beta


def test_value_and_gradients_against_eq_8():
    clean, adv, target, class_beta = _batch()
    got = cfa_loss(adv, clean, target, class_beta)
    b = class_beta[target]
    want = ((ce_rows(clean, target) + b * kl_rows(softmax64(clean), softmax64(adv))) / (1 + b)).mean()
    assert_close(got, want)
    for g, w in zip(grads(got, clean, adv), grads(want, clean, adv), strict=True):
        assert_close(g, w)


def test_equals_the_authors_written_form():
    """``cw_trades_loss`` of ``attack.py``: with ``b = beta_k / (1 + beta_k)`` per class,
    ``sum((1 - b) * CE / B + b * KL_rows / B)``."""
    clean, adv, target, class_beta = _batch(3)
    batch_beta = (class_beta / (1 + class_beta))[target]
    loss_natural = F.cross_entropy(clean, target, reduction="none") / N
    loss_robust = ((1.0 / N) * nn.KLDivLoss(reduction="none")(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1))).sum(
        1
    )
    authors = ((1 - batch_beta) * loss_natural + batch_beta * loss_robust).sum()
    got = cfa_loss(adv, clean, target, class_beta)
    assert_close(got, authors)
    for g, w in zip(grads(got, clean, adv), grads(authors, clean, adv), strict=True):
        assert_close(g, w)


def test_one_beta_for_all_classes_is_trades_over_one_plus_beta_and_the_module():
    clean, adv, target, class_beta = _batch(5)
    same = torch.full((C,), 6.0, dtype=torch.float64)
    assert_close(cfa_loss(adv, clean, target, same), trades_loss(adv, clean, target, beta=6.0) / 7)
    loss_fn = CFALoss(C)
    assert_close(loss_fn(adv, clean, target), cfa_loss(adv, clean, target, same))  # beta 6 for every class at first
    loss_fn.calibration.class_beta.copy_(class_beta)
    natural, robust = loss_fn.terms(adv, clean, target)
    assert torch.equal(loss_fn(adv, clean, target), natural + robust)
    assert_close(loss_fn(adv, clean, target), cfa_loss(adv, clean, target, class_beta))
    loss_fn.record(adv, target)
    assert torch.equal(
        loss_fn.calibration.sums[0], ((adv.argmax(1) == target).double() @ F.one_hot(target, C).double())
    )
    none = cfa_loss(adv, clean, target, class_beta, reduction="none")
    assert none.shape == (N,)
    assert_close(cfa_loss(adv, clean, target, class_beta, reduction="sum"), none.sum())


def test_float32_extreme_logits_and_errors():
    clean = torch.tensor([[100.0, -100.0], [-100.0, 100.0]])
    adv = torch.tensor([[-100.0, 100.0], [-100.0, 100.0]])
    class_beta = torch.tensor([3.0, 6.0], dtype=torch.float64)
    loss = cfa_loss(adv.half(), clean.half(), torch.tensor([0, 1]), class_beta)
    assert loss.dtype == torch.float32
    assert_close(loss, torch.tensor(3.0 * 200.0 / 4 / 2))  # only the first sample's KL (200), beta 3
    with pytest.raises(ValueError, match=r"`class_beta` to be a floating point tensor of shape \(2,\)"):
        cfa_loss(adv, clean, torch.tensor([0, 1]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"`target` values in \[0, 2\)"):
        CFALoss(2)(adv, clean, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="`lambda_eps` >= 0"):
        CFALoss(2, lambda_eps=-1.0)
