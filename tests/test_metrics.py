from __future__ import annotations

import math

import pytest
import torch
from _eval_models import per_class_reference

from torch_absld import ClassAccuracy, class_accuracy_summary, worst_class_count

# ---------------------------------------------------------------------------------------------
# Hand-computed values
# ---------------------------------------------------------------------------------------------


def test_summary_hand_computed() -> None:
    # class 0: 3/4, class 1: 1/2, class 2: 2/2; 6 of 8 samples right.
    result = class_accuracy_summary([3, 1, 2], [4, 2, 2])
    assert result.per_class == [0.75, 0.5, 1.0]
    assert result.avg == 0.75
    assert result.worst == 0.5
    assert result.overall == (0.75 + 0.5) / 2
    assert result.worst_k == 1
    assert result.worst_classes == [1]
    assert result.num_samples == 8


def test_avg_is_sample_weighted_not_the_mean_of_classes() -> None:
    # 1/2 and 9/10: the paper's Avg. is 10/12 over the test set, not (0.5 + 0.9) / 2 = 0.7.
    result = class_accuracy_summary([1, 9], [2, 10])
    assert result.avg == pytest.approx(10 / 12, abs=1e-15)
    assert result.worst == 0.5
    assert result.overall == pytest.approx((10 / 12 + 0.5) / 2, abs=1e-15)


@pytest.mark.parametrize(
    ("worst_fraction", "expected_k", "expected_worst"),
    [
        (None, 1, 0.2),  # C = 4 < 100: the single lowest class
        (0.25, 1, 0.2),  # ceil(1.0) = 1
        (0.5, 2, 0.2),  # the two tied classes: 0.2 and 0.2
        (0.75, 3, (0.2 + 0.2 + 0.5) / 3),
        (0.6, 3, (0.2 + 0.2 + 0.5) / 3),  # ceil(2.4) = 3
        (1.0, 4, (0.5 + 0.2 + 0.2 + 0.9) / 4),
    ],
)
def test_worst_k_with_ties(worst_fraction: float | None, expected_k: int, expected_worst: float) -> None:
    # per class: 5/10, 2/10, 2/10, 9/10 (classes 1 and 2 tie for the lowest).
    result = class_accuracy_summary([5, 2, 2, 9], [10, 10, 10, 10], worst_fraction=worst_fraction)
    assert result.per_class == [0.5, 0.2, 0.2, 0.9]
    assert result.worst_k == expected_k
    assert result.worst == pytest.approx(expected_worst, abs=1e-15)
    assert result.worst_classes == [1, 2, 0, 3][:expected_k]  # ties: lower index first
    assert result.avg == pytest.approx(18 / 40, abs=1e-15)


def test_cifar100_rule_is_the_mean_of_the_ten_worst_classes() -> None:
    g = torch.Generator().manual_seed(0)
    total = torch.randint(50, 101, (100,), generator=g)
    correct = (torch.rand(100, generator=g) * total).long()
    result = class_accuracy_summary(correct, total)
    accuracies = [int(c) / int(t) for c, t in zip(correct, total)]
    ten_worst = sorted(accuracies)[:10]
    assert result.worst_k == 10
    assert result.worst == pytest.approx(sum(ten_worst) / 10, abs=1e-12)
    assert result.avg == pytest.approx(int(correct.sum()) / int(total.sum()), abs=1e-12)
    assert result.overall == pytest.approx((result.avg + result.worst) / 2, abs=1e-12)


@pytest.mark.parametrize(
    ("num_classes", "fraction", "expected"),
    [
        (10, None, 1),
        (99, None, 1),
        (100, None, 10),
        (200, None, 20),
        (30, 0.1, 3),
        (10, 0.25, 3),
        (7, 1.0, 7),
        (3, 0.01, 1),
    ],
)
def test_worst_class_count(num_classes: int, fraction: float | None, expected: int) -> None:
    assert worst_class_count(num_classes, fraction) == expected
    # ceil(f * C) written a second way, with exact rationals
    if fraction is not None:
        from fractions import Fraction

        assert expected == max(1, math.ceil(Fraction(str(fraction)) * num_classes))


def test_class_without_samples_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"1 class\(es\) have none: \[2\]"):
        class_accuracy_summary([1, 2, 0], [2, 2, 0])


@pytest.mark.parametrize(
    ("correct", "total", "error", "match"),
    [
        ([3, 1], [2, 2], ValueError, "`correct` <= `total`"),
        ([-1, 1], [2, 2], ValueError, "`correct` to hold non-negative"),
        ([1, 1], [2, 2, 2], ValueError, "same shape"),
        (torch.tensor([1.0, 1.0]), [2, 2], TypeError, "`correct` to be an integer tensor"),
        ([1.5, 1], [2, 2], TypeError, "`correct` to hold integer counts"),
    ],
)
def test_summary_bad_counts(correct: object, total: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        class_accuracy_summary(correct, total)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fraction", "error", "match"),
    [
        (0.0, ValueError, r"`worst_fraction` in \(0, 1\]"),
        (1.5, ValueError, "`worst_fraction`"),
        (True, TypeError, "`worst_fraction`"),
    ],
)
def test_bad_worst_fraction(fraction: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        worst_class_count(10, fraction)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The accumulator
# ---------------------------------------------------------------------------------------------


def test_accumulator_matches_a_python_reference_over_batches() -> None:
    g = torch.Generator().manual_seed(1)
    num_classes = 5
    metric = ClassAccuracy(num_classes)
    all_preds: list[int] = []
    all_target: list[int] = []
    for n in (7, 1, 12):
        logits = torch.randn(n, num_classes, generator=g)
        target = torch.randint(0, num_classes, (n,), generator=g)
        target[:num_classes] = torch.arange(min(n, num_classes))
        metric.update(logits, target)
        all_preds += logits.argmax(1).tolist()
        all_target += target.tolist()
    preds = torch.randint(0, num_classes, (6,), generator=g)  # integer predictions too
    metric.update(preds, torch.arange(6) % num_classes)
    all_preds += preds.tolist()
    all_target += (torch.arange(6) % num_classes).tolist()

    result = metric.compute()
    assert result.per_class == per_class_reference(all_preds, all_target, num_classes)
    assert result.avg == sum(p == t for p, t in zip(all_preds, all_target)) / len(all_target)
    assert result.worst == min(result.per_class)
    assert result.total == [all_target.count(c) for c in range(num_classes)]


def test_argmax_ties_take_the_first_class() -> None:
    metric = ClassAccuracy(3)
    metric.update(torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [0.0, 0.0, 0.0]]), torch.tensor([0, 2, 2]))
    # predictions 0, 1, 0: class 0 right, both class-2 samples wrong; class 1 has no sample.
    assert metric.correct.tolist() == [1, 0, 0]
    assert metric.total.tolist() == [1, 0, 2]


def test_reset_state_dict_and_to() -> None:
    metric = ClassAccuracy(3, worst_fraction=1.0)
    metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    copy = ClassAccuracy(3, worst_fraction=1.0)
    copy.load_state_dict(metric.state_dict())
    assert copy.compute() == metric.compute()
    assert metric.compute().worst == pytest.approx(2 / 3, abs=1e-15)  # mean of 1, 1, 0
    metric.to(torch.float64)  # integer buffers keep their dtype
    assert metric.counts.dtype == torch.int64
    metric.reset()
    assert metric.counts.sum().item() == 0
    assert "num_classes=3" in repr(metric)


def test_update_compiles_without_graph_breaks() -> None:
    metric = ClassAccuracy(4, validate_args=False)
    reference = ClassAccuracy(4)
    update = torch.compile(metric.update, fullgraph=True, backend="eager")
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        logits, target = torch.randn(8, 4, generator=g), torch.arange(8) % 4
        update(logits, target)
        reference.update(logits, target)
    assert torch.equal(metric.counts, reference.counts)


@pytest.mark.parametrize(
    ("input", "target", "error", "match"),
    [
        (torch.randn(3, 4), torch.tensor([0, 1, 4]), ValueError, r"`target` values in \[0, 4\)"),
        (torch.randn(3, 4), torch.tensor([0, -1, 2]), ValueError, r"`target` values in \[0, 4\)"),
        (torch.randn(3, 5), torch.tensor([0, 1, 2]), ValueError, r"`input` scores of shape \(N, 4\)"),
        (torch.tensor([0, 1, 7]), torch.tensor([0, 1, 2]), ValueError, r"`input` values in \[0, 4\)"),
        (torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0]), TypeError, "`target` to hold integer class indices"),
        (torch.randn(3, 4), torch.tensor([0, 1]), ValueError, r"`target` of shape \(N,\) with N = 3"),
    ],
)
def test_update_bad_input(input: torch.Tensor, target: torch.Tensor, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ClassAccuracy(4).update(input, target)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="`num_classes` >= 1"):
        ClassAccuracy(0)
    with pytest.raises(TypeError, match="`num_classes` to be an int"):
        ClassAccuracy(3.0)  # type: ignore[arg-type]
