from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from _baselines import ce_rows, grads, kl_rows, logits64, softmax64
from torch import nn
from torch.testing import assert_close

from torch_absld.losses.trades import TRADESLoss, trades_kl, trades_loss

C = 6
N = 8


def _batch(seed: int = 0):
    target = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(seed + 100))
    return logits64(N, C, seed), logits64(N, C, seed + 1), target


@pytest.mark.parametrize("beta", [6.0, 1.5])
def test_value_and_gradients_against_the_equation(beta):
    clean, adv, target = _batch()
    got = trades_loss(adv, clean, target, beta=beta)
    # Eq. (TRADES): mean_i [ CE(f(x_i), y_i) + beta * KL(softmax f(x_i) || softmax f(x'_i)) ], the KL's
    # target not detached.
    want = (ce_rows(clean, target) + beta * kl_rows(softmax64(clean), softmax64(adv))).mean()
    assert_close(got, want)
    for g, w in zip(grads(got, clean, adv), grads(want, clean, adv), strict=True):
        assert_close(g, w)


def test_equals_the_authors_written_form():
    """``F.cross_entropy(logits, y) + beta * KLDivLoss(size_average=False)(log_softmax(adv), softmax(clean)) / B``."""
    clean, adv, target = _batch(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        criterion = nn.KLDivLoss(size_average=False)
    authors = F.cross_entropy(clean, target) + 6.0 * criterion(
        F.log_softmax(adv, dim=1), F.softmax(clean, dim=1)
    ) / len(clean)
    got = trades_loss(adv, clean, target)
    assert_close(got, authors)
    for g, w in zip(grads(got, clean, adv), grads(authors, clean, adv), strict=True):
        assert_close(g, w)


def test_the_kl_is_a_batch_mean_with_gradient_through_the_clean_side():
    clean, adv, _ = _batch(5)
    per_sample = kl_rows(softmax64(clean), softmax64(adv))
    assert_close(trades_kl(adv, clean), per_sample.sum() / N)  # batchmean, not / (N * C)
    assert_close(trades_kl(adv, clean, reduction="none"), per_sample)
    assert_close(trades_kl(adv, clean, reduction="sum"), per_sample.sum())
    through_clean = grads(trades_kl(adv, clean), clean)[0]
    assert through_clean.abs().max() > 1e-3  # not detached
    assert_close(through_clean, grads(per_sample.sum() / N, clean)[0])


def test_reductions_and_module():
    clean, adv, target = _batch(7)
    clean, adv = clean.detach().float(), adv.detach().float()
    none = trades_loss(adv, clean, target, reduction="none")
    assert_close(none.mean(), trades_loss(adv, clean, target))
    assert_close(none.sum(), trades_loss(adv, clean, target, reduction="sum"))
    loss_fn = TRADESLoss(beta=2.0)
    ce, kl = loss_fn.terms(adv, clean, target)
    assert_close(ce, F.cross_entropy(clean, target))
    assert_close(kl, trades_kl(adv, clean))
    assert torch.equal(loss_fn(adv, clean, target), ce + 2.0 * kl)
    assert_close(loss_fn(adv, clean, target), trades_loss(adv, clean, target, beta=2.0))
    assert "beta=2" in repr(loss_fn)


def test_extreme_logits_low_precision_and_errors():
    clean = torch.tensor([[100.0, -100.0], [-100.0, 100.0]])
    adv = torch.tensor([[-100.0, 100.0], [-100.0, 100.0]])
    loss = trades_loss(adv.to(torch.bfloat16), clean.to(torch.bfloat16), torch.tensor([0, 1]))
    assert loss.dtype == torch.float32
    assert_close(loss, torch.tensor(6.0 * 200.0 / 2))  # the first sample's KL is 200
    with pytest.raises(ValueError, match=r"`student_clean` of one shape"):
        trades_loss(adv[:, :1], clean, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="`beta` >= 0"):
        TRADESLoss(beta=-1.0)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 2\)"):
        TRADESLoss()(adv, clean, torch.tensor([0, 2]))
