from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from _baselines import ce_rows, grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld.losses.ard import ARDLoss, ard_loss

C = 10
N = 6


def _batch(seed: int = 0):
    target = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(seed + 100))
    return logits64(N, C, seed), logits64(N, C, seed + 1), logits64(N, C, seed + 2), target


@pytest.mark.parametrize(("temperature", "alpha"), [(30.0, 1.0), (4.0, 0.9), (1.0, 0.0)])
def test_value_and_gradients_against_the_equation(temperature, alpha):
    s_adv, s_clean, teacher, target = _batch()
    got = ard_loss(s_adv, s_clean, teacher, target, temperature=temperature, alpha=alpha)
    # alpha * T^2 * (1 / (N C)) * sum_i KL(softmax(t_i / T) || softmax(s'_i / T)) + (1 - alpha) * mean_i CE(s_i, y_i)
    kl = kl_rows(softmax64(teacher.detach(), temperature), softmax64(s_adv, temperature))
    want = alpha * temperature**2 * kl.sum() / (N * C) + (1 - alpha) * ce_rows(s_clean, target).mean()
    assert_close(got, want)
    got_grads = grads(got, s_adv, s_clean, teacher)
    for g, w in zip(got_grads[:2], grads(want, s_adv, s_clean), strict=True):
        if w is None:  # a term with weight 0 still reaches its input (with a zero gradient)
            assert g is None or not g.any()
        else:
            assert_close(g, w)
    assert got_grads[2] is None  # no gradient to the teacher


def test_equals_the_authors_written_form():
    """``alpha*T*T*KLDivLoss()(log_softmax(out/T), softmax(t/T)) + (1-alpha)*CrossEntropyLoss()(basic, y)``."""
    s_adv, s_clean, teacher, target = _batch(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KLDivLoss's "mean" warning: the element mean is the point here
        kl = nn.KLDivLoss()(F.log_softmax(s_adv / 30.0, dim=1), F.softmax(teacher.detach() / 30.0, dim=1))
    authors = 0.8 * 30.0 * 30.0 * kl + 0.2 * nn.CrossEntropyLoss()(s_clean, target)
    got = ard_loss(s_adv, s_clean, teacher, target, alpha=0.8)
    assert_close(got, authors)
    for g, w in zip(grads(got, s_adv, s_clean), grads(authors, s_adv, s_clean), strict=True):
        assert_close(g, w)


def test_defaults_reductions_and_module():
    s_adv, s_clean, teacher, target = (v.detach().float() if v.is_floating_point() else v for v in _batch(5))
    default = ard_loss(s_adv, s_clean, teacher, target)
    assert torch.equal(default, ard_loss(s_adv, s_clean, teacher, target, temperature=30.0, alpha=1.0))
    none = ard_loss(s_adv, s_clean, teacher, target, alpha=0.5, reduction="none")
    assert none.shape == (N,)
    assert_close(none.mean(), ard_loss(s_adv, s_clean, teacher, target, alpha=0.5))
    assert_close(none.sum(), ard_loss(s_adv, s_clean, teacher, target, alpha=0.5, reduction="sum"))
    loss_fn = ARDLoss(temperature=4.0, alpha=0.25)
    kl, ce = loss_fn.terms(s_adv, s_clean, teacher, target)
    assert_close(ce, F.cross_entropy(s_clean, target))
    assert_close(0.25 * kl + 0.75 * ce, ard_loss(s_adv, s_clean, teacher, target, temperature=4.0, alpha=0.25))
    assert torch.equal(loss_fn(s_adv, s_clean, teacher, target), loss_fn.combine(kl, ce))
    assert "temperature=4" in repr(loss_fn)


def test_low_precision_and_errors():
    s_adv, s_clean, teacher, target = (v.detach().float() if v.is_floating_point() else v for v in _batch(9))
    half = ard_loss(*(v.to(torch.bfloat16) for v in (s_adv, s_clean, teacher)), target)
    assert half.dtype == torch.float32
    assert_close(half, ard_loss(s_adv, s_clean, teacher, target), rtol=0.05, atol=1e-3)
    with pytest.raises(ValueError, match="`temperature` > 0"):
        ARDLoss(temperature=0.0)
    with pytest.raises(ValueError, match=r"`alpha` in \[0, 1\]"):
        ard_loss(s_adv, s_clean, teacher, target, alpha=1.5)
    with pytest.raises(ValueError, match="`teacher` of one shape"):
        ard_loss(s_adv, s_clean, teacher[:, :3], target)
