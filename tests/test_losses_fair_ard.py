from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from _baselines import ce_rows, grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld import absld_loss
from torch_absld.losses.ard import ard_loss
from torch_absld.losses.fair_ard import FairARDLoss, fair_ard_loss

C = 5
N = 8
WEIGHTS = torch.tensor([5 / 6, 1.0, 2.5, 1.2, 0.9], dtype=torch.float64)


def _batch(seed: int = 0):
    target = torch.tensor([0, 1, 2, 3, 4, 2, 2, 0])
    return logits64(N, C, seed), logits64(N, C, seed + 1), logits64(N, C, seed + 2), target


def _reference(s_adv, s_clean, teacher, target, weights, base, temperature, alpha):
    """Fair-ARD: (1/N) sum_i w_{y_i} [alpha * T^2 * KL_i / C + (1 - alpha) * CE_i]  (base "ard");
    Fair-RSLAD: (1/N) sum_i w_{y_i} [alpha * KL_i(adv) + (1 - alpha) * KL_i(clean)] / C  (base "rslad")."""
    p = softmax64(teacher.detach(), temperature)
    adv = kl_rows(p, softmax64(s_adv, temperature)) / C
    if base == "ard":
        per_sample = alpha * temperature**2 * adv + (1 - alpha) * ce_rows(s_clean, target)
    else:
        per_sample = alpha * adv + (1 - alpha) * kl_rows(p, softmax64(s_clean, temperature)) / C
    return (weights[target] * per_sample).sum() / N


@pytest.mark.parametrize(
    ("base", "temperature", "alpha"),
    [("ard", 30.0, 1.0), ("ard", 2.0, 0.6), ("rslad", 1.0, 5 / 6), ("rslad", 2.0, 0.5)],
)
def test_value_and_gradients_against_the_equation(base, temperature, alpha):
    s_adv, s_clean, teacher, target = _batch()
    got = fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS, base=base, temperature=temperature, alpha=alpha)
    want = _reference(s_adv, s_clean, teacher, target, WEIGHTS, base, temperature, alpha)
    assert_close(got, want)
    for g, w in zip(grads(got, s_adv, s_clean), grads(want, s_adv, s_clean), strict=True):
        assert_close(g, w)


def test_equals_the_authors_per_sample_loop():
    """``Fair-ARD.py``: per sample ``KLDivLoss()`` on (C,) vectors and ``CrossEntropyLoss()``, times the weight,
    summed and divided by the batch size."""
    s_adv, s_clean, teacher, target = _batch(4)
    kl, ce = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(N):
            kl.append(nn.KLDivLoss()(F.log_softmax(s_adv[i] / 30, dim=0), F.softmax(teacher[i].detach() / 30, dim=0)))
            ce.append(nn.CrossEntropyLoss()(s_clean[i].unsqueeze(0), target[i].unsqueeze(0)))
            kl[i], ce[i] = kl[i] * WEIGHTS[target[i]], ce[i] * WEIGHTS[target[i]]
    alpha = 0.9
    authors = alpha * 30 * 30 * torch.stack(kl).sum() / N + (1 - alpha) * torch.stack(ce).sum() / N
    assert_close(fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS, alpha=alpha), authors)


def test_unit_weights_give_the_base_losses_and_the_batch_size_divides():
    s_adv, s_clean, teacher, target = (v.detach() for v in _batch(6))
    ones = torch.ones(C, dtype=torch.float64)
    assert_close(fair_ard_loss(s_adv, s_clean, teacher, target, ones), ard_loss(s_adv, s_clean, teacher, target))
    rslad = absld_loss(s_adv, s_clean, teacher, target, ones, ones)  # ABSLD at temperatures 1 is RSLAD
    assert_close(fair_ard_loss(s_adv, s_clean, teacher, target, ones, base="rslad"), rslad)
    # Doubling every weight doubles the loss: normalised by N, not by the sum of the weights.
    doubled = fair_ard_loss(s_adv, s_clean, teacher, target, 2 * WEIGHTS, base="rslad")
    assert_close(doubled, 2 * fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS, base="rslad"))
    none = fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS, reduction="none")
    assert_close(none.mean(), fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS))


def test_module_uses_its_controllers_weights():
    s_adv, s_clean, teacher, target = _batch(8)
    s_adv, s_clean, teacher = (v.detach().float() for v in (s_adv, s_clean, teacher))
    loss_fn = FairARDLoss(C, base="rslad")
    assert (loss_fn.temperature, loss_fn.alpha) == (1.0, 5 / 6)
    loss_fn.vulnerability.weights.copy_(WEIGHTS.float())
    adv, clean = loss_fn.terms(s_adv, s_clean, teacher, target)
    want = fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS.float(), base="rslad")
    assert_close(loss_fn.combine(adv, clean), want)
    assert_close(loss_fn(s_adv, s_clean, teacher, target), want)
    assert loss_fn.vulnerability.sample_counts.sum() == 0  # the loss itself records nothing
    loss_fn.record(torch.arange(N, dtype=torch.float32), target)
    assert loss_fn.vulnerability.sample_counts.sum() == N
    assert "base='rslad'" in repr(loss_fn)


def test_errors():
    s_adv, s_clean, teacher, target = (v.detach() for v in _batch())
    with pytest.raises(ValueError, match="`base` to be one of 'ard', 'rslad'"):
        fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS, base="trades")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`class_weights` to be a floating point tensor of shape \(5,\)"):
        fair_ard_loss(s_adv, s_clean, teacher, target, WEIGHTS[:4])
    with pytest.raises(ValueError, match=r"`student_adv` of shape \(N, 3\) for num_classes = 3"):
        FairARDLoss(3)(s_adv, s_clean, teacher, target)
    with pytest.raises(ValueError, match="`min_weight` <= `max_weight`"):
        FairARDLoss(C, min_weight=3.0)
