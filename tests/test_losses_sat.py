from __future__ import annotations

import pytest
import torch
from _baselines import ce_rows, grads, logits64
from torch.testing import assert_close

from torch_absld.losses.sat import SATLoss, sat_loss

C = 7


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_value_and_gradient_against_the_equation(reduction):
    logits = logits64(9, C, seed=0)
    target = torch.randint(0, C, (9,), generator=torch.Generator().manual_seed(1))
    got = sat_loss(logits, target, reduction=reduction)
    per_sample = ce_rows(logits, target)
    want = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    assert_close(got, want)
    weights = torch.linspace(0.5, 2.0, 9, dtype=torch.float64)  # a non-uniform upstream gradient for "none"
    scalar = (lambda v: (v * weights).sum()) if reduction == "none" else (lambda v: v)
    assert_close(grads(scalar(got), logits)[0], grads(scalar(want), logits)[0])


def test_extreme_logits_and_low_precision():
    logits = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]])
    target = torch.tensor([1, 1])
    assert_close(sat_loss(logits, target, reduction="none"), torch.tensor([200.0, 0.0]))
    bf16 = sat_loss(logits.to(torch.bfloat16), target)
    assert bf16.dtype == torch.float32
    assert torch.isfinite(bf16)


def test_module_equals_function_and_errors():
    logits, target = torch.randn(5, C), torch.tensor([0, 1, 2, 3, 6])
    assert torch.equal(SATLoss()(logits, target), sat_loss(logits, target))
    assert torch.equal(SATLoss(reduction="sum")(logits, target), sat_loss(logits, target, reduction="sum"))
    assert "reduction='mean'" in repr(SATLoss())
    with pytest.raises(ValueError, match=r"`target` values in \[0, 7\)"):
        sat_loss(logits, target + 1)
    with pytest.raises(ValueError, match="`reduction` to be one of 'mean', 'sum', 'none'"):
        SATLoss(reduction="batchmean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`student_adv` of shape \(N, C\)"):
        sat_loss(logits[0], target)
