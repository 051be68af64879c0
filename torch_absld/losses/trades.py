r"""TRADES (Zhang et al. 2019): clean cross-entropy plus $\beta$ times the clean-to-adversarial KL."""

from __future__ import annotations

import torch
from torch import Tensor

from .._internal.checks import at_least_float32, check_choice, check_positive
from ._common import (
    SAMPLE_REDUCTIONS,
    SampleReduction,
    WeightedTerms,
    check_batch,
    check_logit_batch,
    check_logit_values,
    masked_kl_rows,
    per_sample_ce,
    reduce_samples,
)

__all__ = ["TRADESLoss", "trades_kl", "trades_loss"]

DEFAULT_BETA = 6.0
r"""TRADES' $\beta$ for CIFAR-10 (``--beta 6.0``, ``train_trades_cifar10.py`` of the official code)."""


def _per_sample_kl(student_clean: Tensor, student_adv: Tensor) -> Tensor:
    log_p = torch.log_softmax(at_least_float32(student_clean), dim=1)
    log_q = torch.log_softmax(at_least_float32(student_adv), dim=1)
    return masked_kl_rows(log_p, log_q)


def trades_kl(student_clean: Tensor, student_adv: Tensor, *, reduction: SampleReduction = "mean") -> Tensor:
    r"""TRADES' robust term: $\mathrm{KL}(\mathrm{softmax} f(x) \| \mathrm{softmax} f(x'))$ per sample.

    The **clean** distribution is the first argument (the target of PyTorch's ``KLDivLoss``) and
    is **not detached**: the gradient flows through both $f(x)$ and $f(x')$, as in the official
    ``trades.py``. Per sample: $\mathrm{KL}_i = \sum_c p_{ic} (\log p_{ic} - \log q_{ic})$, in float32.
    ``"mean"`` averages $\mathrm{KL}_i$ over the batch (the authors' ``KLDivLoss(size_average=False)``
    divided by the batch size, i.e. ``"batchmean"``, **not** a mean over the $N \times C$ elements).
    A clean logit of $-\infty$ masks its class ($0 \log 0 = 0$); NaN and $+\infty$ are rejected.

    Shape:
        - student_clean, student_adv: $(N, C)$ logits of the model on $x$ and on $x'$
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    logits = {"student_clean": student_clean, "student_adv": student_adv}
    check_logit_batch(logits)
    check_logit_values(logits)
    return reduce_samples(_per_sample_kl(student_clean, student_adv), reduction)


def trades_loss(
    student_clean: Tensor,
    student_adv: Tensor,
    target: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    reduction: SampleReduction = "mean",
) -> Tensor:
    r"""The TRADES loss: $\mathrm{CE}(f(x), y) + \beta\,\mathrm{KL}(\mathrm{softmax} f(x) \| \mathrm{softmax} f(x'))$.

    Per sample: $\ell_i = \mathrm{CE}_i + \beta\,\mathrm{KL}_i$ (see :func:`trades_kl`: gradient through
    both outputs). ``"mean"`` averages $\ell_i$ over the batch, which is exactly the official
    ``loss_natural + beta * loss_robust`` (``F.cross_entropy`` mean plus the summed KL divided by
    the batch size); ``"sum"`` sums, ``"none"`` returns $\ell_i$.

    Shape:
        - student_clean, student_adv: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> clean, adv = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
        >>> trades_loss(clean, adv, torch.tensor([0]), beta=1.0)
        tensor(0.4547)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    _, target = check_batch({"student_clean": student_clean, "student_adv": student_adv}, target)
    per_sample = per_sample_ce(student_clean, target) + beta * _per_sample_kl(student_clean, student_adv)
    return reduce_samples(per_sample, reduction)


class TRADESLoss(WeightedTerms):
    r""":func:`trades_loss` as a module, with its two terms apart for logging.

    Args:
        beta: weight $\beta$ of the KL term (6, the official CIFAR-10 setting).
        reduction: ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        validate_args: check label values in eager mode (one host sync per call).

    Shape:
        - student_clean, student_adv: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> loss_fn = TRADESLoss()
        >>> clean, adv = torch.randn(2, 4, 10).unbind()
        >>> ce, kl = loss_fn.terms(clean, adv, torch.tensor([0, 1, 2, 3]))
        >>> torch.equal(loss_fn.combine(ce, kl), ce + 6.0 * kl)
        True
    """

    reduction: SampleReduction

    def __init__(
        self, *, beta: float = DEFAULT_BETA, reduction: SampleReduction = "mean", validate_args: bool = True
    ) -> None:
        super().__init__(reduction, SAMPLE_REDUCTIONS, validate_args)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.coefficients = (1.0, self.beta)

    def forward(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> Tensor:
        """The loss: ``combine(*terms(...))``."""
        return self.combine(*self.terms(student_clean, student_adv, target))

    def _forward(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> Tensor:
        return self.combine(*self._terms(student_clean, student_adv, target))

    def terms(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        r"""The natural cross-entropy and the robust KL, each reduced, before the weights 1 and $\beta$."""
        logits = {"student_clean": student_clean, "student_adv": student_adv}
        _, target = check_batch(logits, target, check_values=self.validate_args)
        return self._terms(student_clean, student_adv, target)

    def _terms(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        ce = reduce_samples(per_sample_ce(student_clean, target), self.reduction)
        return ce, reduce_samples(_per_sample_kl(student_clean, student_adv), self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta:.4g}, reduction={self.reduction!r}"
