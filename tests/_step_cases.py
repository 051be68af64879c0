"""The methods' training steps on tiny data, for the table of bad inputs (``tests/test_methods_errors.py``).

Every step is built with one attack step and no random start (deterministic), and with per-class
state that is not uniform (FRL's and CFA's radius scales and weights, Fair-ARD's class weights), so
that labels read in the wrong way give a different result.
"""

from __future__ import annotations

from typing import Any

import torch
from _cases import rejected_load
from _models import OddOutput
from torch import nn

from torch_absld import methods

N, C = 4, 4
LABELS = (1, 3, 2, 2)  # no sample of class 0: labels read as a mask would select every class
SCALE = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64)
WEIGHTS = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64)
VULNERABILITY = torch.tensor([1.0, 0.9, 2.0, 1.5])  # in Fair-ARD's clamp [5/6, 5/2]


def net(seed: int, c: int = C) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, c))


def batch(n: int = N) -> torch.Tensor:
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(1))


def labels(dtype: torch.dtype = torch.long) -> torch.Tensor:
    return torch.tensor(LABELS, dtype=dtype)


def build(method: str, student: Any = None, teacher: Any = None, num_classes: Any = C, **options: Any) -> Any:
    """The step of ``method`` with one attack step, no random start and per-class state that is not uniform."""
    options.setdefault("steps", 1)
    options.setdefault("random_start", None)
    if method == "cfa":
        options.setdefault("fawa", False)
    student = net(1) if student is None else student
    teacher = net(2) if teacher is None else teacher
    step = methods.create(method, student, num_classes=num_classes, teacher=teacher, **options)
    with torch.no_grad():
        if method == "frl":
            step.loss_fn.multipliers.scale.copy_(SCALE)
            step.loss_fn.multipliers.natural_weights.copy_(WEIGHTS)
        if method == "cfa":
            step.loss_fn.calibration.scale.copy_(SCALE)
            step.loss_fn.calibration.class_beta.copy_(SCALE * 4)
        if method == "fair-ard":
            step.loss_fn.vulnerability.weights.copy_(VULNERABILITY)
    return step


def run_step(method: str, target: Any = None, input: Any = None, **options: Any) -> Any:
    """One step of ``method`` on the tiny batch; the loss is backpropagated."""
    step = build(method, **options)
    out = step(batch() if input is None else input, labels() if target is None else target)
    out.loss.backward()
    return out


def same_as_long_labels(method: str):
    def check(out: Any) -> None:
        want = run_step(method)
        torch.testing.assert_close(out.loss, want.loss)
        torch.testing.assert_close(out.x_adv, want.x_adv)

    return check


def empty_step(method: str) -> tuple[Any, Any]:
    """A training step on an empty batch, and the step."""
    step = build(method).train()
    return step(batch(0), torch.zeros(0, dtype=torch.long)), step


def zero_loss_nothing_recorded(result: tuple[Any, Any]) -> None:
    """A zero loss in the graph, and nothing recorded by the method's controllers."""
    out, step = result
    assert out.loss.shape == ()
    assert out.loss.item() == 0.0
    assert out.loss.requires_grad
    out.loss.backward()
    for module in step.modules():
        accumulator = getattr(module, "accumulator", None)
        if isinstance(accumulator, torch.Tensor):
            assert accumulator.sum() == 0, type(module).__name__


def nan_input() -> torch.Tensor:
    x = batch()
    x[2, 0, 0, 0] = float("nan")
    return x


def returns(kind: str, seed: int = 2) -> nn.Module:
    """A network whose output is wrapped (``"tuple"``), NaN, or -inf on class 0 (``"masked"``): ``OddOutput``."""
    return OddOutput(net(seed), kind)


def finite_loss(out: Any) -> None:
    assert torch.isfinite(out.loss).all()


def loaded(method: str, state_changes: dict[str, Any], *, source: Any = None, **options: Any) -> Any:
    """Load a checkpoint of ``source`` (default: a step of ``method`` after one step) changed by ``state_changes``."""
    if source is None:
        source = build(method, **options).train()
        source(batch(), labels())
    state = source.state_dict()
    state.update(state_changes)
    target = build(method, student=net(7), **options)
    return rejected_load(target, state)
