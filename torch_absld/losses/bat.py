r"""BAT (Sun et al. 2023): TRADES on boundary-near points plus a pull of their predictions towards uniform."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._internal.checks import at_least_float32, check_choice, check_positive
from ._common import SAMPLE_REDUCTIONS, SampleReduction, WeightedTerms, check_batch, per_sample_ce, reduce_samples
from .trades import DEFAULT_BETA, _per_sample_kl

__all__ = ["BATLoss", "bat_loss", "uniform_kl"]

DEFAULT_UNIFORM_WEIGHT = 1.0
"""Weight of the uniform-distribution terms (hard-coded 1 in ``BAT_loss`` of the official ``train.py``)."""


def uniform_kl(logits: Tensor) -> Tensor:
    r"""Each sample's $\mathrm{KL}(\mathrm{softmax}\, z \,\|\, U) = \log C - H(\mathrm{softmax}\, z)$, $U$ uniform.

    A logit of $-\infty$ masks its class ($0 \log 0 = 0$). Unchecked: the losses check their logits.

    Shape:
        - logits: $(N, C)$
        - Output: $(N,)$, float32 (float64 for float64 logits)

    Example:
        >>> uniform_kl(torch.tensor([[0.0, 0.0], [100.0, 0.0]]))
        tensor([0.0000, 0.6931])
    """
    log_p = torch.log_softmax(at_least_float32(logits), dim=1)
    safe = torch.where(log_p == -math.inf, torch.zeros_like(log_p), log_p)  # 0 log 0 = 0 (a masked class)
    return (log_p.exp() * safe).sum(dim=1) + math.log(logits.shape[1])


def _terms(
    student_clean: Tensor,
    student_first_adv: Tensor,
    student_last_clean: Tensor,
    target: Tensor,
    reduction: SampleReduction,
) -> tuple[Tensor, Tensor, Tensor]:
    natural = per_sample_ce(student_last_clean, target)
    robust = _per_sample_kl(student_clean, student_first_adv)
    uniform = uniform_kl(student_last_clean) + uniform_kl(student_first_adv)
    return reduce_samples(natural, reduction), reduce_samples(robust, reduction), reduce_samples(uniform, reduction)


def bat_loss(
    student_clean: Tensor,
    student_first_adv: Tensor,
    student_last_clean: Tensor,
    target: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
    reduction: SampleReduction = "mean",
) -> Tensor:
    r"""BAT's loss on the two boundary-near points of each sample.

    With $z^{lc}$ the logits on the last iterate still classified correctly ("last clean"), $z^{fa}$
    on the first adversarial iterate ("first adversarial", see
    :class:`~torch_absld.attack.EarlyStopping`) and $z$ on the clean input, per sample:

    $$\ell_i = \mathrm{CE}(z^{lc}_i, y_i)
      + \beta\,\mathrm{KL}(\mathrm{softmax} z_i \,\|\, \mathrm{softmax} z^{fa}_i)
      + w\,\big[\mathrm{KL}(\mathrm{softmax} z^{lc}_i \,\|\, U)
      + \mathrm{KL}(\mathrm{softmax} z^{fa}_i \,\|\, U)\big],$$

    the natural term on the last-clean points, the TRADES term on the first-adversarial ones (the
    gradient through both outputs), and the "target-class fairness" terms pulling both points'
    predictions towards the uniform distribution $U$ (:func:`uniform_kl`). ``"mean"`` averages over
    the batch (``BAT_loss`` of the official ``train.py``: CE mean, the KL sums divided by the batch
    size), ``"sum"`` sums, ``"none"`` returns $\ell_i$. Computed in float32.

    Shape:
        - student_clean, student_first_adv, student_last_clean: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> bat_loss(z, torch.zeros(1, 2), z, torch.tensor([0]), beta=1.0)
        tensor(0.7826)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    uniform_weight = check_positive(uniform_weight, "uniform_weight", allow_zero=True)
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    logits = {
        "student_clean": student_clean,
        "student_first_adv": student_first_adv,
        "student_last_clean": student_last_clean,
    }
    _, target = check_batch(logits, target)
    natural, robust, uniform = _terms(student_clean, student_first_adv, student_last_clean, target, reduction)
    return natural + beta * robust + uniform_weight * uniform


class BATLoss(WeightedTerms):
    r""":func:`bat_loss` as a module, with its three terms apart for logging.

    Args:
        beta: weight $\beta$ of the TRADES term (6, ``--beta 6.0``).
        uniform_weight: weight $w$ of the uniform terms (1, hard-coded in the official code).
        reduction: ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        validate_args: check label values in eager mode (one host sync per call).

    Shape:
        - student_clean, student_first_adv, student_last_clean: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> clean, first_adv, last_clean = torch.randn(3, 4, 5).unbind()
        >>> terms = BATLoss().terms(clean, first_adv, last_clean, torch.tensor([0, 1, 2, 3]))
        >>> torch.allclose(BATLoss().combine(*terms), terms[0] + 6.0 * terms[1] + terms[2])
        True
    """

    reduction: SampleReduction

    def __init__(
        self,
        *,
        beta: float = DEFAULT_BETA,
        uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(reduction, SAMPLE_REDUCTIONS, validate_args)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.uniform_weight = check_positive(uniform_weight, "uniform_weight", allow_zero=True)
        self.coefficients = (1.0, self.beta, self.uniform_weight)

    def forward(
        self, student_clean: Tensor, student_first_adv: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> Tensor:
        """The loss: ``combine(*terms(...))``."""
        return self.combine(*self.terms(student_clean, student_first_adv, student_last_clean, target))

    def _forward(
        self, student_clean: Tensor, student_first_adv: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> Tensor:
        return self.combine(*self._terms(student_clean, student_first_adv, student_last_clean, target))

    def terms(
        self, student_clean: Tensor, student_first_adv: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""The natural CE, the TRADES KL and the sum of the two uniform KLs, each reduced, before 1, $\beta$, $w$."""
        logits = {
            "student_clean": student_clean,
            "student_first_adv": student_first_adv,
            "student_last_clean": student_last_clean,
        }
        _, target = check_batch(logits, target, check_values=self.validate_args)
        return self._terms(student_clean, student_first_adv, student_last_clean, target)

    def _terms(
        self, student_clean: Tensor, student_first_adv: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return _terms(student_clean, student_first_adv, student_last_clean, target, self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta:.4g}, uniform_weight={self.uniform_weight:.4g}, reduction={self.reduction!r}"
