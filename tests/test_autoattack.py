from __future__ import annotations

import pytest
import torch
from _models import tiny_batch, tiny_cnn

C = 5


def test_autoattack_inside_inference_mode_equals_outside():
    pytest.importorskip("pyautoattack")
    from torch_absld import auto_attack

    model = tiny_cnn(C).eval()
    x, y = tiny_batch(8, C)
    kwargs = {"num_classes": C, "version": "custom", "attacks": ["apgd-ce"], "seed": 0}
    want = auto_attack(model, x, y, **kwargs)
    with torch.inference_mode():
        got = auto_attack(model, x.clone(), y.clone(), **kwargs)
    assert torch.equal(got, want)
