"""Float64 references of the baselines' formulas, written from the papers' equations with elementary ops,
and the small pieces the method tests share."""

from __future__ import annotations

import torch
from _reference import round_into_ball
from torch import Tensor, nn


def softmax64(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """softmax(z / T) from exp and sum (float64)."""
    z = logits.double() / temperature
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def kl_rows(p: Tensor, q: Tensor) -> Tensor:
    """Each row's KL(p || q) = sum_c p_c (log p_c - log q_c)."""
    return (p * (torch.log(p) - torch.log(q))).sum(dim=1)


def ce_rows(logits: Tensor, target: Tensor) -> Tensor:
    """Each row's cross-entropy -log softmax(z)_y."""
    return -torch.log(softmax64(logits))[torch.arange(len(target)), target]


def logits64(n: int, c: int, seed: int, scale: float = 3.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, c, generator=g, dtype=torch.float64)).requires_grad_(True)


def grads(loss: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
    return torch.autograd.grad(loss, inputs, allow_unused=True)


def mlp(num_classes: int, seed: int, features: int = 3 * 8 * 8) -> nn.Module:
    """No BatchNorm or Dropout: a sample's outputs do not depend on its batch (exact DDP comparisons)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 16), nn.Tanh(), nn.Linear(16, num_classes))


def hand_pgd(model, x, start, loss_of_output, steps, eps, step_size, on_forward=None):
    """PGD written out with plain autograd: ascend the sign of the input gradient, project, clip to [0, 1].

    The projection is onto the ball exactly (bounds rounded toward ``x``), as the library's.
    """
    x_adv = start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        output = model(x_adv)
        if on_forward is not None:
            on_forward(output)
        (grad,) = torch.autograd.grad(loss_of_output(output), [x_adv])
        with torch.no_grad():
            x_adv = x_adv + step_size * grad.sign()
            x_adv = round_into_ball(torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1), x, eps)
    return x_adv.detach()


def uniform_start(x: Tensor, eps: float, seed: int) -> Tensor:
    """The engine's uniform start drawn from a generator seeded with ``seed``, projected."""
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
    return round_into_ball(torch.min(torch.max(x + (2 * noise - 1) * eps, x - eps), x + eps).clamp(0, 1), x, eps)


def normal_start(x: Tensor, std: float, seed: int) -> Tensor:
    """The engine's Gaussian start drawn from a generator seeded with ``seed`` (not projected)."""
    return x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def train_epoch(step, optimizer, batches) -> tuple[list[Tensor], list[list[Tensor]]]:
    """The loop a user writes around a step module: forward, backward, optimizer step; losses and gradients."""
    losses, gradients = [], []
    for x, y in batches:
        out = step(x, y)
        optimizer.zero_grad()
        out.loss.backward()
        gradients.append([p.grad.clone() for p in step.student.parameters()])
        losses.append(out.loss.detach())
        optimizer.step()
    return losses, gradients


def assert_same_steps(got, reference: nn.Module, optimizer, batches, loss_of_batch) -> None:
    """Replay ``batches`` on ``reference`` with ``loss_of_batch(x, y)`` written out by hand; every loss and
    gradient must equal ``got`` (what :func:`train_epoch` returned for the step module) bit for bit."""
    for (x, y), loss, gradients in zip(batches, *got, strict=True):
        want = loss_of_batch(x, y)
        optimizer.zero_grad()
        want.backward()
        assert torch.equal(loss, want.detach())
        for g, p in zip(gradients, reference.parameters(), strict=True):
            assert torch.equal(g, p.grad)
        optimizer.step()
