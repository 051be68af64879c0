"""Bad input raises early with the argument's name, what was expected and what came."""

from __future__ import annotations

import pytest
import torch

from torch_absld import ABSLDLoss, ClassTemperatureController, absld_loss

C = 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 1}, ValueError, "`num_classes` >= 2, but got 1"),
        ({"num_classes": 3.0}, TypeError, "`num_classes` to be an int"),
        ({"min_temperature": 0.0}, ValueError, "`min_temperature` > 0"),
        ({"min_temperature": -1.0}, ValueError, "`min_temperature` > 0"),
        ({"min_temperature": 3.0, "max_temperature": 2.0}, ValueError, "`min_temperature` <= `max_temperature`"),
        ({"init_temperature": 9.0}, ValueError, "`init_temperature` in"),
        ({"lr": -0.1}, ValueError, "`lr` >= 0"),
        ({"lr": float("nan")}, ValueError, "`lr` to be finite"),
        ({"risk_reduction": "median"}, ValueError, "`risk_reduction` to be one of"),
    ],
)
def test_controller_configuration(kwargs, error, match):
    kwargs = {"num_classes": C, **kwargs}
    with pytest.raises(error, match=match):
        ClassTemperatureController(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 1.5}, ValueError, r"`alpha` in \[0, 1\], but got 1.5"),
        ({"alpha": -0.1}, ValueError, r"`alpha` in \[0, 1\]"),
        ({"adapt": "clean"}, ValueError, "`adapt` to be one of"),
        ({"coupling": "both"}, ValueError, "`coupling` to be one of"),
        ({"reduction": "avg"}, ValueError, "`reduction` to be one of"),
        ({"student_temperature": 0.0}, ValueError, "`student_temperature` > 0"),
        ({"min_temperature": 0.0}, ValueError, "`min_temperature` > 0"),
    ],
)
def test_loss_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        ABSLDLoss(C, **kwargs)


def _logits(n=6):
    return torch.randn(n, C), torch.randn(n, C), torch.randn(n, C)


def test_labels_out_of_range():
    loss_fn = ABSLDLoss(C)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\), but got values in \[0, 4\]"):
        loss_fn(*_logits(), torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\), but got values in \[-1, 2\]"):
        loss_fn.adv.update(torch.randn(3, C), torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\)"):
        loss_fn.adv(torch.tensor([7]))


def test_float_and_one_hot_labels():
    loss_fn = ABSLDLoss(C)
    with pytest.raises(TypeError, match="`target` to hold integer class indices"):
        loss_fn(*_logits(), torch.zeros(6))
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\), but got \(6, 4\). Pass class indices"):
        loss_fn(*_logits(), torch.zeros(6, C, dtype=torch.long))


def test_shape_and_class_count_mismatches():
    loss_fn = ABSLDLoss(C)
    s_adv, s_clean, teacher = _logits()
    target = torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="of one shape"):
        loss_fn(s_adv, s_clean[:5], teacher, target)
    with pytest.raises(ValueError, match=r"Expected logits of shape \(N, 4\) for num_classes = 4"):
        loss_fn(*(torch.randn(6, 5) for _ in range(3)), target)
    with pytest.raises(ValueError, match=r"`target` of shape \(N,\) with N = 6, but got \(5,\)"):
        loss_fn(s_adv, s_clean, teacher, target[:5])
    with pytest.raises(ValueError, match=r"`logits` of shape \(N, 4\)"):
        loss_fn.adv.update(torch.randn(6, 3), target)
    with pytest.raises(ValueError, match=r"`tau_adv` of shape \(4,\)"):
        absld_loss(s_adv, s_clean, teacher, target, torch.ones(3), torch.ones(C))
    with pytest.raises(TypeError, match="`teacher` to be floating point logits"):
        absld_loss(s_adv, s_clean, teacher.long(), target, torch.ones(C), torch.ones(C))
    with pytest.raises(ValueError, match=r"`kind` to be one of 'adv', 'clean'"):
        loss_fn.soft_labels(teacher, target, kind="train")  # type: ignore[arg-type]


def test_value_checks_can_be_switched_off_for_speed():
    ctrl = ClassTemperatureController(C, validate_args=False)
    ctrl.update(torch.randn(2, C), torch.tensor([0, 1]))  # no host sync; shapes still checked
    with pytest.raises(ValueError, match="shape"):
        ctrl.update(torch.randn(2, C + 1), torch.tensor([0, 1]))
