"""Error messages of the loss name the arguments a user passed."""

from __future__ import annotations

import pytest
import torch

from torch_absld import ABSLDLoss, absld_loss

C = 4


def test_class_count_mismatch_names_the_module_arguments():
    loss_fn = ABSLDLoss(C)
    logits = [torch.randn(6, 5) for _ in range(3)]
    with pytest.raises(
        ValueError, match=r"Expected logits of shape \(N, 4\) for num_classes = 4 \(`student_adv_logits`, "
    ):
        loss_fn(*logits, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["tau_adv", "tau_clean"])
def test_functional_loss_rejects_non_positive_or_non_finite_temperatures(name, bad):
    s_adv, s_clean, teacher = torch.randn(3, 6, C).unbind()
    target = torch.arange(6) % C
    taus = {"tau_adv": torch.ones(C), "tau_clean": torch.ones(C)}
    taus[name][2] = bad
    with pytest.raises(ValueError, match=rf"Expected `{name}` to hold finite temperatures > 0, but got"):
        absld_loss(s_adv, s_clean, teacher, target, taus["tau_adv"], taus["tau_clean"])
