from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from _baselines import grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld.losses.adaad import AdaADLoss, adaad_attack_objective, adaad_loss

C = 10
N = 5


def _logits(seed: int = 0):
    return tuple(logits64(N, C, seed + k) for k in range(4))


@pytest.mark.parametrize("alpha", [1.0, 0.7])
@pytest.mark.parametrize(("reduction", "divisor"), [("mean", N * C), ("sum", C)])
def test_value_and_gradients_against_the_equation(alpha, reduction, divisor):
    s_adv, s_clean, t_adv, t_clean = _logits()
    got = adaad_loss(s_adv, s_clean, t_adv, t_clean, alpha=alpha, reduction=reduction)
    adv = kl_rows(softmax64(t_adv.detach()), softmax64(s_adv))
    clean = kl_rows(softmax64(t_clean.detach()), softmax64(s_clean))
    want = (alpha * adv.sum() + (1 - alpha) * clean.sum()) / divisor
    assert_close(got, want)
    got_grads = grads(got, s_adv, s_clean, t_adv, t_clean)
    for g, w in zip(got_grads[:2], grads(want, s_adv, s_clean), strict=True):
        assert_close(g, w)
    assert got_grads[2] is None
    assert got_grads[3] is None  # the teacher gets no gradient in the loss


def test_equals_the_authors_written_forms():
    """CIFAR-10: ``KLDivLoss()`` (element mean); CIFAR-100: ``(1/len) * sum(KLDivLoss(reduce=False)(...))``."""
    s_adv, s_clean, t_adv, t_clean = _logits(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cifar10 = nn.KLDivLoss()(F.log_softmax(s_adv, dim=1), F.softmax(t_adv.detach(), dim=1))
    cifar100 = torch.sum(
        nn.KLDivLoss(reduction="none")(F.log_softmax(s_adv, dim=1), F.softmax(t_adv.detach(), dim=1))
    ) / len(s_adv)
    assert_close(adaad_loss(s_adv, s_clean, t_adv, t_clean), cifar10)
    assert_close(adaad_loss(s_adv, s_clean, t_adv, t_clean) * C, cifar100)  # "batchmean" is C times "mean"


def test_attack_objective_sums_the_kl_and_differentiates_through_both_networks():
    s, t, _, _ = _logits(5)
    got = adaad_attack_objective((s, t), torch.zeros(N, dtype=torch.long))
    want = kl_rows(softmax64(t), softmax64(s)).sum()  # teacher first: KL(softmax t || softmax s)
    assert_close(got, want)
    got_s, got_t = grads(got, s, t)
    want_s, want_t = grads(want, s, t)
    assert_close(got_s, want_s)
    assert_close(got_t, want_t)
    assert got_t.abs().max() > 1e-3  # the teacher branch is not detached


def test_module_terms_and_errors():
    s_adv, s_clean, t_adv, t_clean = (v.detach().float() for v in _logits(7))
    loss_fn = AdaADLoss(alpha=0.25, reduction="sum")
    adv, clean = loss_fn.terms(s_adv, s_clean, t_adv, t_clean)
    assert_close(adv, adaad_loss(s_adv, s_clean, t_adv, t_clean, alpha=1.0, reduction="sum"))
    assert_close(clean, adaad_loss(s_adv, s_clean, t_adv, t_clean, alpha=0.0, reduction="sum"))
    assert torch.equal(loss_fn(s_adv, s_clean, t_adv, t_clean), 0.25 * adv + 0.75 * clean)
    none = adaad_loss(s_adv, s_clean, t_adv, t_clean, reduction="none")
    assert_close(none.mean(), adaad_loss(s_adv, s_clean, t_adv, t_clean))
    bf16 = adaad_loss(*(v.to(torch.bfloat16) for v in (s_adv, s_clean, t_adv, t_clean)))
    assert bf16.dtype == torch.float32
    with pytest.raises(ValueError, match="`reduction` to be one of 'mean', 'sum', 'none'"):
        AdaADLoss(reduction="elementwise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`teacher_clean` of one shape"):
        adaad_loss(s_adv, s_clean, t_adv, t_clean[:3])
