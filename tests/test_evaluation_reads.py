"""Evaluation entry points read the device once per call (per batch for a loader), 0 times unchecked."""

from __future__ import annotations

import torch
from _reads import count_reads
from torch import nn

from torch_absld import ClassAccuracy, auto_attack, evaluate_robustness

MODEL = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
X = torch.rand(6, 3, 2, 2)
Y = torch.tensor([0, 1, 2, 3, 0, 1])


def test_class_accuracy_update_reads_once_and_none_unchecked():
    for input in (MODEL(X), Y):
        with count_reads() as reads:
            ClassAccuracy(4).update(input, Y)
        assert reads.count == 1, reads.calls
        with count_reads() as reads:
            ClassAccuracy(4, validate_args=False).update(input, Y)
        assert reads.count == 0, reads.calls


def test_auto_attack_reads_once_and_none_unchecked():
    with count_reads() as reads:
        auto_attack(MODEL, X, Y, num_classes=4, eps=0.0)
    assert reads.count == 1
    with count_reads() as reads:
        auto_attack(MODEL, X, Y, num_classes=4, eps=0.0, validate_args=False)
    assert reads.count == 0


def test_evaluate_robustness_reads_once_per_batch_and_once_for_the_counts():
    loader = [(X, Y), (X, Y), (X, Y)]
    options = {"attacks": ("clean", "fgsm", "pgd", "cw"), "progress": False}
    with count_reads() as reads:
        evaluate_robustness(MODEL, loader, 4, **options)
    assert reads.count == 3 + 1, reads.calls
    with count_reads() as reads:
        evaluate_robustness(MODEL, loader, 4, validate_args=False, **options)
    assert reads.count == 1, reads.calls
