"""Reads from the device: the README loop reads once per step, each public functional at most once."""

from __future__ import annotations

import pytest
import torch
from _reads import count_reads
from torch import nn

from torch_absld import ABSLDLoss, ClassTemperatureController, KLPGDAttack, absld_loss, soft_label_kl, soft_labels
from torch_absld._internal import checks

C = 10


def _readme_loop(validate_args: bool, steps: int = 3, bad: str | None = None) -> list[int]:
    """The README's drop-in loop; the number of reads of each step."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, C)).eval()
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, C))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    loss_fn = ABSLDLoss(C, validate_args=validate_args)
    attack = KLPGDAttack(student, eps=8 / 255, step_size=2 / 255, steps=2, validate_args=validate_args)
    reads = []
    for _ in range(steps):
        x, y = torch.rand(16, 3, 8, 8), torch.arange(16) % C
        if bad == "label":
            y[3] = C
        with count_reads() as counter:
            with torch.no_grad():
                teacher_logits = teacher(x)
            if bad == "teacher":
                teacher_logits[2, 1] = float("nan")
            x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
            loss = loss_fn(student(x_adv), student(x), teacher_logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        reads.append(counter.count)
    return reads


@pytest.mark.parametrize(("validate_args", "reads"), [(True, 1), (False, 0)])
def test_the_readme_loop_reads_the_device_once_per_step(validate_args, reads):
    assert _readme_loop(validate_args) == [reads] * 3


@pytest.mark.parametrize(
    ("bad", "match"), [("label", r"`target` values in \[0, 10\)"), ("teacher", "`teacher_logits` to hold finite")]
)
def test_the_readme_loop_still_refuses_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        _readme_loop(True, steps=1, bad=bad)


def test_a_changed_target_is_checked_again_by_the_loss():
    loss_fn = ABSLDLoss(C)
    teacher, s_adv, s_clean = torch.randn(3, 4, C).unbind()
    target = torch.arange(4)
    with count_reads() as counter:
        loss_fn.soft_labels(teacher, target)
    assert counter.count == 0
    target[0] = C  # in place, after soft_labels: the loss reads the labels again
    with pytest.raises(ValueError, match=r"`target` values in \[0, 10\)"):
        loss_fn(s_adv, s_clean, teacher, target)
    with count_reads() as counter:
        loss_fn(s_adv, s_clean, teacher, torch.arange(4))  # other tensors: checked, in one read
    assert counter.count == 1


def test_flags_left_by_a_soft_labels_call_wait_one_call_at_most():
    loss_fn = ABSLDLoss(C)
    teacher = torch.randn(4, C)
    with count_reads() as counter:
        loss_fn.soft_labels(teacher, torch.arange(4))  # nothing reads its flags...
        loss_fn.soft_labels(teacher, torch.arange(4))  # ...so the next one reads both, once
    assert counter.count == 1
    assert not checks._pending.checks
    loss_fn.soft_labels(teacher, torch.tensor([0, 1, 2, C]))
    with pytest.raises(ValueError, match=r"`target` values in \[0, 10\)"):
        loss_fn.soft_labels(teacher, torch.arange(4))  # the earlier bad labels are not lost
    soft_label_kl(teacher, teacher, 1.0)  # and then not raised again by an unrelated call


def _functionals(validate_args: bool) -> dict[str, object]:
    s_adv, s_clean, teacher = torch.randn(3, 4, C).unbind()
    target, tau = torch.arange(4), torch.ones(C)
    kwargs = {"validate_args": validate_args}
    return {
        "absld_loss": lambda: absld_loss(s_adv, s_clean, teacher, target, tau, tau, **kwargs),
        "soft_label_kl": lambda: soft_label_kl(s_adv, teacher, torch.ones(4), **kwargs),
        "soft_labels": lambda: soft_labels(teacher, torch.ones(4), **kwargs),
    }


@pytest.mark.parametrize("name", ["absld_loss", "soft_label_kl", "soft_labels"])
@pytest.mark.parametrize(("validate_args", "most"), [(True, 1), (False, 0)])
def test_each_functional_reads_at_most_once(name, validate_args, most):
    call = _functionals(validate_args)[name]
    with count_reads() as counter:
        call()  # type: ignore[operator]
    assert counter.count <= most, counter.calls


@pytest.mark.parametrize(("validate_args", "most"), [(True, 1), (False, 0)])
def test_the_controller_reads_at_most_once_per_update_and_once_per_epoch(validate_args, most):
    ctrl = ClassTemperatureController(C, validate_args=validate_args)
    with count_reads() as counter:
        ctrl.update(torch.randn(4, C), torch.arange(4))
    assert counter.count == most
    with count_reads() as counter:
        ctrl.step()
    assert counter.count == 1  # the finite-risk check of the epoch's sums
