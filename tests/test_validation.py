from __future__ import annotations

import pytest
import torch
from _models import tiny_cnn
from torch.testing import assert_close

from torch_absld import ClassStatistics, PGDConfig, evaluate_robustness
from torch_absld.averaging import FairnessAwareAveraging
from torch_absld.validation import validation_pass

C = 5
ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=3, random_start="uniform")


def _split(n: int = 30):
    g = torch.Generator().manual_seed(4)
    return torch.rand(n, 3, 8, 8, generator=g), torch.cat([torch.arange(C), torch.randint(0, C, (n - C,), generator=g)])


def _batches(x, y, size):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(y), size)]


def _correct_counts(model, batches, seed=0):
    stats = ClassStatistics(C, num_stats=2)

    def record(clean, robust, target):
        correct = torch.stack([clean.argmax(1) == target, robust.argmax(1) == target], dim=1)
        stats.accumulate(correct.double(), target)

    seen = validation_pass(model, batches, record, config=ATTACK, seed=seed)
    return stats.accumulator, seen


def test_counts_equal_the_evaluation_protocol_and_do_not_depend_on_the_batching():
    model = tiny_cnn(C, seed=1).train()
    x, y = _split()
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    counts, seen = _correct_counts(model, _batches(x, y, 7), seed=3)
    assert seen == len(y)
    assert model.training
    assert all(p.requires_grad and p.grad.abs().sum() == 0 for p in model.parameters())
    assert torch.equal(_correct_counts(model, _batches(x, y, 30), seed=3)[0], counts)
    report = evaluate_robustness(
        model,
        _batches(x, y, 11),
        C,
        attacks=("clean", "pgd"),
        progress=False,
        seed=3,
        attack_overrides={"pgd": {"steps": 3}},
    )
    for row, attack in enumerate(("clean", "pgd")):
        assert_close(counts[row] / counts[2], torch.tensor(report[attack].per_class, dtype=torch.float64))
    assert counts[1].sum() < counts[0].sum()  # the attack does something


def test_fawa_measures_with_the_same_pass():
    model = tiny_cnn(C, seed=2)
    x, y = _split()
    fawa = FairnessAwareAveraging(model, C, attack=ATTACK, seed=3, start_epoch=0, threshold=0.0)
    assert fawa.step(_batches(x, y, 8))
    counts, _ = _correct_counts(model, _batches(x, y, 8), seed=3)
    assert fawa.last_worst == pytest.approx(float((counts[1] / counts[2]).min()))


def test_errors():
    model = tiny_cnn(C)
    with pytest.raises(ValueError, match="'uniform' or None, but got 'normal'"):
        validation_pass(model, [], lambda *a: None, config=PGDConfig())
    with pytest.raises(TypeError, match=r"\(input, target\) pairs.*batch 0 is Tensor"):
        validation_pass(model, [torch.rand(2, 3, 8, 8)], lambda *a: None, config=ATTACK)
    with pytest.raises(ValueError, match=r"`input` values in \[clip_min, clip_max\]"):
        validation_pass(model, [(torch.full((2, 3, 8, 8), 2.0), torch.tensor([0, 1]))], lambda *a: None, config=ATTACK)
