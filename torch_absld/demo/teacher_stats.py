"""What the students learn from: the teacher's soft labels on the training split, summarised."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["expected_calibration_error", "teacher_statistics"]


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = 15) -> float:
    r"""$\sum_b \frac{|B_b|}{N} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|$ over ``bins`` equal-width bins of $(0, 1]$.

    Example:
        >>> ece = expected_calibration_error(torch.tensor([0.9, 0.9, 0.6, 0.6]), torch.tensor([1.0, 1.0, 1.0, 0.0]))
        >>> round(ece, 6)  # |0.9 + 0.9 - 2| / 4 + |0.6 + 0.6 - 1| / 4
        0.1
    """
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    index = torch.bucketize(confidence.double(), edges[1:-1], right=False)
    gap = torch.zeros(bins, dtype=torch.float64)
    gap.index_add_(0, index, confidence.double() - correct.double())
    return float(gap.abs().sum() / confidence.numel())


@torch.no_grad()
def teacher_statistics(
    teacher: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], num_classes: int, device: torch.device
) -> dict[str, Any]:
    """Accuracy, calibration and sharpness of ``teacher`` on ``loader`` (its clean inputs).

    Returns ``accuracy``, ``per_class_accuracy``, ``ece`` (15 bins), ``confidence`` (mean top
    probability), ``true_probability`` (mean probability of the true class, also
    ``per_class_true_probability``), ``entropy`` (mean, in nats) and ``logit_std`` (mean over
    samples of the standard deviation of the logits).
    """
    logits, labels = [], []
    for x, y in loader:
        logits.append(teacher(x.to(device)).float().cpu())
        labels.append(y)
    z, y = torch.cat(logits), torch.cat(labels)
    p = z.softmax(dim=1)
    confidence, prediction = p.max(dim=1)
    correct = (prediction == y).double()
    true_probability = p.gather(1, y[:, None]).squeeze(1).double()
    count = torch.bincount(y, minlength=num_classes).double().clamp_min(1)

    def per_class(values: Tensor) -> list[float]:
        return (torch.zeros(num_classes, dtype=torch.float64).index_add_(0, y, values) / count).tolist()

    return {
        "accuracy": float(correct.mean()),
        "per_class_accuracy": per_class(correct),
        "ece": expected_calibration_error(confidence, correct),
        "confidence": float(confidence.mean()),
        "true_probability": float(true_probability.mean()),
        "per_class_true_probability": per_class(true_probability),
        "entropy": float(torch.special.entr(p).sum(dim=1).mean()),
        "logit_std": float(z.std(dim=1).mean()),
    }
