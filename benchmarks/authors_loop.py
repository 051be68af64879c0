"""A baseline ABSLD step with the structure of the authors' public training script.

Kept deliberately close to how that script is organised, inefficiencies included, so the
comparison in ``vs_authors.py`` measures what a user of the original code pays:

- the teacher's logits are divided by each sample's temperature in a Python loop over the
  batch, one indexed assignment per sample (on two ``.detach()`` views of one tensor, which
  share storage, as in the script);
- the attack puts the student in eval mode, starts from ``x + 0.001 * randn``, runs 10 steps of
  the summed element-wise ``KLDivLoss`` between ``log_softmax(student(x_adv))`` and the
  teacher's probabilities with ``torch.autograd.grad``, then puts the student back in train
  mode and returns its logits on ``x_adv``;
- the loss uses ``torch.log(softmax(...))`` and ``p * log(p + 1e-5) - p * log q``, in float32;
- the per-class risk is accumulated in a second Python loop over the batch.

Only the device handling differs (``.to(device)`` instead of ``.cuda()``), and the deprecated
``KLDivLoss(size_average=False, reduce=False)`` is spelled ``reduction="none"``, its exact
equivalent (followed, as in the script, by ``torch.sum``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AuthorsLoop", "authors_loss"]


def _kl_elementwise(log_q: Tensor, p: Tensor) -> Tensor:
    return -log_q * p + torch.log(p + 1e-5) * p


def authors_loss(adv_logits: Tensor, nat_logits: Tensor, teacher_adv: Tensor, teacher_nat: Tensor) -> Tensor:
    """``5/6`` and ``1/6`` of the mean over all elements of ``p log(p + 1e-5) - p log softmax(z_s)``."""
    p_adv, p_nat = F.softmax(teacher_adv.detach(), dim=1), F.softmax(teacher_nat.detach(), dim=1)
    kl_adv = torch.mean(_kl_elementwise(torch.log(F.softmax(adv_logits, dim=1)), p_adv))
    kl_nat = torch.mean(_kl_elementwise(torch.log(F.softmax(nat_logits, dim=1)), p_nat))
    return 5.0 / 6.0 * kl_adv + 1.0 / 6.0 * kl_nat


def _inner_attack(
    model: nn.Module,
    teacher_logits: Tensor,
    x_natural: Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    step_size: float,
    epsilon: float,
    perturb_steps: int,
) -> Tensor:
    criterion_kl = nn.KLDivLoss(reduction="none")
    model.eval()
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape, device=x_natural.device).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1), F.softmax(teacher_logits, dim=1))
            loss_kl = torch.sum(loss_kl)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    optimizer.zero_grad()
    return model(x_adv)


class AuthorsLoop:
    """One training step and the end-of-epoch update, organised as in the authors' script."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        optimizer: torch.optim.Optimizer,
        num_classes: int,
        *,
        steps: int = 10,
        epsilon: float = 8 / 255,
        step_size: float = 2 / 255,
        temperature_rate: float = 0.1,
        temp_min: float = 0.5,
        temp_max: float = 5.0,
    ) -> None:
        device = next(student.parameters()).device
        self.student, self.teacher, self.optimizer = student, teacher, optimizer
        self.steps, self.epsilon, self.step_size = steps, epsilon, step_size
        self.rate, self.temp_min, self.temp_max = temperature_rate, temp_min, temp_max
        self.temp_adv = torch.ones(num_classes, dtype=torch.float, device=device)
        self.temp_nat = torch.ones(num_classes, dtype=torch.float, device=device)
        self.total_loss_adv = torch.zeros(num_classes, dtype=torch.float, device=device)
        self.total_loss_nat = torch.zeros(num_classes, dtype=torch.float, device=device)
        self.ce_loss = nn.CrossEntropyLoss(reduction="none")
        self.teacher.eval()

    def scaled_teacher_logits(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The teacher's logits divided per sample, in place, as the script does.

        The two results are ``.detach()`` views of one tensor: both end up divided by
        ``temp_adv[y] * temp_nat[y]``.
        """
        with torch.no_grad():
            teacher_logits = self.teacher(x).detach()
            teacher_adv = teacher_logits.detach()
            teacher_nat = teacher_logits.detach()
            for i in range(y.shape[0]):
                teacher_adv[i] = teacher_adv[i] / self.temp_adv[y[i]]
                teacher_nat[i] = teacher_nat[i] / self.temp_nat[y[i]]
        return teacher_adv, teacher_nat

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        self.student.train()
        self.optimizer.zero_grad()
        teacher_adv, teacher_nat = self.scaled_teacher_logits(x, y)
        adv_logits = _inner_attack(
            self.student,
            teacher_adv,
            x,
            self.optimizer,
            step_size=self.step_size,
            epsilon=self.epsilon,
            perturb_steps=self.steps,
        )
        self.student.train()
        nat_logits = self.student(x)
        with torch.no_grad():
            risk_adv = self.ce_loss(adv_logits.detach(), y.detach())
            risk_nat = self.ce_loss(nat_logits.detach(), y.detach())
            for i in range(y.shape[0]):
                self.total_loss_adv[y[i]] = self.total_loss_adv[y[i]] + risk_adv[i]
                self.total_loss_nat[y[i]] = self.total_loss_nat[y[i]] + risk_nat[i]
        loss = authors_loss(adv_logits, nat_logits, teacher_adv, teacher_nat)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def end_epoch(self) -> None:
        for temp, total in ((self.temp_adv, self.total_loss_adv), (self.temp_nat, self.total_loss_nat)):
            gap = total - torch.mean(total)
            temp.copy_(torch.clamp(temp - self.rate * gap / torch.max(torch.abs(gap)), self.temp_min, self.temp_max))
            total.zero_()
