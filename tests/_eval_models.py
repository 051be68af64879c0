"""Models, data and slow references for the evaluation tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_absld import RobustnessReport, class_accuracy_summary


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run on one intra-op thread: tiny models on a shared 2-core machine are far faster that way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class PixelPredictor(nn.Module):
    """Predicts class ``round(x[:, 0] * (C - 1))`` of a (N, 1) input: predictions chosen by hand."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("classes", torch.arange(num_classes, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        position = x[:, :1] * (self.num_classes - 1)
        return -((position - self.classes) ** 2)


def inputs_predicting(predictions: list[int], num_classes: int) -> Tensor:
    """Inputs for :class:`PixelPredictor` that make it predict ``predictions``."""
    return torch.tensor(predictions, dtype=torch.float32).unsqueeze(1) / (num_classes - 1)


def tiny_mlp(in_features: int = 12, num_classes: int = 4, seed: int = 0, dropout: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_features, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(16, num_classes))
    return nn.Sequential(*layers)


def blobs(n: int, num_classes: int, shape: tuple[int, ...] = (1, 3, 4), seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images in [0, 1] with a class-dependent mean, so a small model gets some classes right."""
    g = torch.Generator().manual_seed(seed)
    target = torch.arange(n) % num_classes
    centres = 0.15 + 0.7 * torch.rand((num_classes, *shape), generator=g)
    x = (centres[target] + 0.15 * torch.randn((n, *shape), generator=g)).clamp(0, 1)
    return x, target


def fit(model: nn.Module, x: Tensor, y: Tensor, steps: int = 60, lr: float = 0.05) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def per_class_reference(predictions: list[int], target: list[int], num_classes: int) -> list[float]:
    """Accuracy of each class with plain Python loops."""
    accuracies = []
    for c in range(num_classes):
        hits = [p == t for p, t in zip(predictions, target) if t == c]
        accuracies.append(sum(hits) / len(hits))
    return accuracies


def pgd_reference(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, step: float, steps: int, loss: str) -> Tensor:
    """A readable L-inf PGD from x itself (no random start) on CE or the CW margin, one sample at a time."""
    out = []
    for xi, yi in zip(x, y):
        x0 = xi.unsqueeze(0)
        adv = x0.clone()
        for _ in range(steps):
            adv.requires_grad_(True)
            logits = model(adv)[0]
            if loss == "ce":
                objective = -torch.log_softmax(logits, dim=0)[yi]
            else:
                others = torch.cat([logits[:yi], logits[yi + 1 :]])
                objective = others.max() - logits[yi]
            (grad,) = torch.autograd.grad(objective, adv)
            adv = adv.detach() + step * grad.sign()
            adv = torch.min(torch.max(adv, x0 - eps), x0 + eps).clamp(0, 1)
        out.append(adv[0])
    return torch.stack(out)


def digits(seed: int = 0, train_size: int = 1300) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) images in [0, 1]: train and test tensors."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, test = perm[:train_size], perm[train_size:]
    return x[train], y[train], x[test], y[test]


def fgsm_trained_mlp(x: Tensor, y: Tensor, *, eps: float, epochs: int = 8, seed: int = 0) -> nn.Module:
    """A 64-64-10 MLP trained for a second with FGSM adversarial training (random start, step 1.25 eps)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(order), 64):
            xb, yb = x[order[i : i + 64]], y[order[i : i + 64]]
            start = (xb + (2 * torch.rand(xb.shape, generator=g) - 1) * eps).clamp(0, 1).requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(start), yb), start)
            adv = start.detach() + 1.25 * eps * grad.sign()
            adv = torch.min(torch.max(adv, xb - eps), xb + eps).clamp(0, 1)
            loss = F.cross_entropy(model(adv), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def report_of(values: dict[str, tuple[list[int], list[int]]], **kwargs: object) -> RobustnessReport:
    """A report from per-attack (correct, total) counts, for tests of the report and the checkpoint."""
    results = {
        k: class_accuracy_summary(c, t, worst_fraction=kwargs.get("worst_fraction")) for k, (c, t) in values.items()
    }  # type: ignore[arg-type]
    return RobustnessReport(results, num_classes=len(next(iter(values.values()))[0]), eps=8 / 255, **kwargs)  # type: ignore[arg-type]
