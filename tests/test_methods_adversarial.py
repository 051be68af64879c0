"""What the baseline methods' steps share (`AdversarialStep`): one read from the device per step."""

from __future__ import annotations

import pytest
import torch
from _step_cases import METHODS, batch, build, labels


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("validate_args", "reads"), [(True, 1), (False, 0)])
def test_one_host_read_per_training_step(monkeypatch, method, validate_args, reads):
    """The labels, the input range and the teacher's logits are checked once per step, in one transfer."""
    step = build(method, steps=3, validate_args=validate_args).train()
    step(batch(), labels())  # the first step also checks the student's class count (shapes only)
    counted = []
    for name in ("tolist", "item", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name):
            counted.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counting)
    out = step(batch(), labels())
    monkeypatch.undo()
    assert counted == ["tolist"] * reads
    out.loss.backward()
