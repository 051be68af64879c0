"""torch-absld's evaluation attacks against torchattacks and AutoAttack on a model trained on real digits."""

from __future__ import annotations

import pytest
import torch
from _eval_models import digits, fgsm_trained_mlp, per_class_reference, single_thread
from torch import nn

from torch_absld import evaluate_robustness

torchattacks = pytest.importorskip("torchattacks")

EPS = 0.1  # digits have 17 grey levels in [0, 1]: 0.1 is about 1.6 levels
STEP = EPS / 4  # the paper's 2/255 for 8/255, scaled to this radius
TOLERANCE = 1.5  # percentage points


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A 64-64-10 MLP with about 93% clean and 70% PGD accuracy on 497 held-out digits (1 s of training)."""
    x_train, y_train, x_test, y_test = digits()
    with single_thread():
        model = fgsm_trained_mlp(x_train, y_train, eps=EPS)
    return model, x_test, y_test


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100 * int((model(x).argmax(1) == y).sum()) / len(y)


def loader(x: torch.Tensor, y: torch.Tensor, size: int = 128) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def test_fgsm_pgd_cw_agree_with_torchattacks(setup: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = setup
    with single_thread():
        report = evaluate_robustness(
            model,
            loader(x, y),
            10,
            attacks=("clean", "fgsm", "pgd", "cw"),
            eps=EPS,
            progress=False,
            attack_overrides={"pgd": {"step_size": STEP}, "cw": {"step_size": STEP}},
        )
        torch.manual_seed(0)  # torchattacks' random start
        peer_fgsm = accuracy(model, torchattacks.FGSM(model, eps=EPS)(x, y), y)
        peer_pgd = accuracy(model, torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=20, random_start=True)(x, y), y)
        peer_pgd30 = accuracy(model, torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=30, random_start=True)(x, y), y)
    clean = 100 * report["clean"].avg
    # The model must be accurate and robust enough for the comparison to mean something.
    assert clean > 85
    assert 100 * report["pgd"].avg > 40
    assert 100 * report["fgsm"].avg == pytest.approx(peer_fgsm, abs=TOLERANCE)
    assert 100 * report["pgd"].avg == pytest.approx(peer_pgd, abs=TOLERANCE)
    # CW-inf with 30 steps is at least as strong as torchattacks' CE-PGD with the same budget (up to noise).
    assert 100 * report["cw"].avg <= peer_pgd30 + TOLERANCE
    # Per-class clean accuracy, from the model's predictions with a Python reference.
    with torch.no_grad():
        preds = model(x).argmax(1).tolist()
    assert report["clean"].per_class == per_class_reference(preds, y.tolist(), 10)
    assert report["clean"].avg * 100 == pytest.approx(accuracy(model, x, y), abs=1e-9)


@pytest.mark.slow
def test_autoattack_is_at_least_as_strong_as_pgd(setup: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    """The standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square) on 200 test digits, a few seconds on one CPU thread."""
    pytest.importorskip("pyautoattack")
    model, x, y = setup
    x, y = x[:200], y[:200]
    rng = torch.get_rng_state()
    grads = [p.grad.clone() for p in model.parameters()]  # left by training
    with single_thread():
        report = evaluate_robustness(
            model,
            loader(x, y, 200),
            10,
            attacks=("clean", "pgd", "autoattack"),
            eps=EPS,
            progress=False,
            attack_overrides={"pgd": {"step_size": STEP}},
        )
    assert report.settings["autoattack"]["version"] == "standard"
    assert 0 < report["autoattack"].avg <= report["pgd"].avg < report["clean"].avg
    assert all(a <= p for a, p in zip(report["autoattack"].per_class, report["clean"].per_class))
    assert torch.equal(torch.get_rng_state(), rng)  # pyautoattack seeds the global generator: restored
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))  # FAB's backward() did not reach them
    assert all(p.requires_grad for p in model.parameters())
