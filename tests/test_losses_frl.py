from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _baselines import ce_rows, grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld.losses.frl import FRLLoss, frl_loss
from torch_absld.losses.trades import trades_loss

C, N = 5, 9


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed + 100)
    target = torch.randint(0, C, (N,), generator=g)
    weights = torch.rand(2, C, generator=g, dtype=torch.float64) + 0.1
    return logits64(N, C, seed), logits64(N, C, seed + 1), target, weights[0], weights[1]


@pytest.mark.parametrize("beta", [1.5, 0.5])
def test_value_and_gradients_against_the_equation(beta):
    clean, adv, target, w_nat, w_bndy = _batch()
    got = frl_loss(adv, clean, target, w_nat, w_bndy, beta=beta)
    u, v = w_nat[target], w_bndy[target]
    ce, kl = ce_rows(clean, target), kl_rows(softmax64(clean), softmax64(adv))
    want = (u * ce).sum() / u.sum() + beta * (v * kl).sum() / v.sum()
    assert_close(got, want)
    for g, w in zip(grads(got, clean, adv), grads(want, clean, adv), strict=True):
        assert_close(g, w)


def test_equals_the_authors_written_form():
    """``train_model`` of ``utils_frl2.py``: ``sum(CE * w0) / sum(w0) + beta * sum(KL_rows * w1) / sum(w1)``."""
    clean, adv, target, w_nat, w_bndy = _batch(2)
    loss_natural = nn.CrossEntropyLoss(reduction="none")(clean, target)
    loss_bndy = nn.KLDivLoss(reduction="none")(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1)).sum(1)
    weight0, weight1 = w_nat[target], w_bndy[target]
    authors = torch.sum(loss_natural * weight0) / torch.sum(weight0) + 1.5 * torch.sum(loss_bndy * weight1) / torch.sum(
        weight1
    )
    got = frl_loss(adv, clean, target, w_nat, w_bndy)
    assert_close(got, authors)
    for g, w in zip(grads(got, clean, adv), grads(authors, clean, adv), strict=True):
        assert_close(g, w)


def test_equal_weights_give_trades_and_the_module_equals_the_function():
    clean, adv, target, w_nat, w_bndy = _batch(4)
    uniform = torch.full((C,), 0.2, dtype=torch.float64)
    assert_close(frl_loss(adv, clean, target, uniform, uniform), trades_loss(adv, clean, target, beta=1.5))
    loss_fn = FRLLoss(C, beta=2.0)
    assert_close(loss_fn(adv, clean, target), trades_loss(adv, clean, target, beta=2.0))  # weights 1/C at first
    loss_fn.multipliers.natural_weights.copy_(w_nat)
    loss_fn.multipliers.boundary_weights.copy_(w_bndy)
    natural, boundary = loss_fn.terms(adv, clean, target)
    assert torch.equal(loss_fn(adv, clean, target), natural + 2.0 * boundary)
    assert_close(loss_fn(adv, clean, target), frl_loss(adv, clean, target, w_nat, w_bndy, beta=2.0))
    scale = w_nat.sum() / 2  # a step's normalizers replace the two sums of the weights
    u, v = w_nat[target], w_bndy[target]
    got = loss_fn.terms(adv, clean, target, normalizers=(scale, scale))
    assert_close(got[0], (u * ce_rows(clean, target)).sum() / scale)
    assert_close(got[1], (v * kl_rows(softmax64(clean), softmax64(adv))).sum() / scale)
    none = frl_loss(adv, clean, target, w_nat, w_bndy, reduction="none")
    shares = N * (u * ce_rows(clean, target) / u.sum() + 1.5 * v * kl_rows(softmax64(clean), softmax64(adv)) / v.sum())
    assert_close(none, shares)  # each sample's share: the mean is the loss
    assert_close(none.mean(), frl_loss(adv, clean, target, w_nat, w_bndy))
    assert_close(frl_loss(adv, clean, target, w_nat, w_bndy, reduction="sum"), none.sum())
    assert "beta=2" in repr(loss_fn)


def test_float32_extreme_logits_and_errors():
    clean = torch.tensor([[100.0, -100.0], [-100.0, 100.0]])
    adv = torch.tensor([[-100.0, 100.0], [-100.0, 100.0]])
    weights = torch.tensor([0.75, 0.25], dtype=torch.float64)  # float64 controller weights, float32 loss
    loss = frl_loss(adv.bfloat16(), clean.bfloat16(), torch.tensor([0, 1]), weights, weights)
    assert loss.dtype == torch.float32
    assert_close(loss, torch.tensor(1.5 * 0.75 * 200.0))  # only the first sample's KL (200) is not zero
    with pytest.raises(ValueError, match=r"`natural_weights` to be a floating point tensor of shape \(2,\)"):
        frl_loss(adv, clean, torch.tensor([0, 1]), torch.ones(3), weights)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 2\)"):
        FRLLoss(2)(adv, clean, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"`student_adv` of shape \(N, 3\) for num_classes = 3"):
        FRLLoss(3)(adv, clean, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="`beta` >= 0"):
        FRLLoss(2, beta=-1.0)
    with pytest.raises(ValueError, match="`limit` in"):
        FRLLoss(2, limit=2.0)
