r"""BAT (Sun et al. 2023): TRADES on boundary-near points plus a pull of their predictions towards uniform."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._internal.checks import at_least_float32, check_choice, check_positive
from ._common import REDUCTIONS, SampleReduction, WeightedTerms, check_batch, kl_rows, per_sample_ce, reduce
from .trades import DEFAULT_BETA

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
    safe = torch.where(log_p == -math.inf, torch.zeros_like(log_p), log_p)
    return (log_p.exp() * safe).sum(dim=1) + math.log(logits.shape[1])


def _logits(student_first_adv: Tensor, student_clean: Tensor, student_last_clean: Tensor) -> dict[str, Tensor]:
    return {
        "student_first_adv": student_first_adv,
        "student_clean": student_clean,
        "student_last_clean": student_last_clean,
    }


def _terms(
    student_first_adv: Tensor, student_clean: Tensor, student_last_clean: Tensor, target: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    natural = per_sample_ce(student_last_clean, target)
    uniform = uniform_kl(student_last_clean) + uniform_kl(student_first_adv)
    return natural, kl_rows(student_clean, student_first_adv), uniform


def bat_loss(
    student_first_adv: Tensor,
    student_clean: Tensor,
    student_last_clean: Tensor,
    target: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""BAT's loss on the two boundary-near points of each sample (``BAT_loss`` of the official ``train.py``).

    With $z^{fa}$ the logits on the first adversarial iterate, $z^{lc}$ on the last one still
    classified correctly (:class:`~torch_absld.attack.EarlyStopping`), $z$ on the clean input:

    $$\ell_i = \mathrm{CE}(z^{lc}_i, y_i) + \beta\,\mathrm{KL}(\mathrm{softmax} z_i \,\|\, \mathrm{softmax} z^{fa}_i)
      + w\,\big[\mathrm{KL}(\mathrm{softmax} z^{lc}_i \,\|\, U) + \mathrm{KL}(\mathrm{softmax} z^{fa}_i \,\|\, U)\big]$$

    (:func:`uniform_kl`; gradient through both sides of the TRADES KL). ``"none"``: $\ell_i$;
    ``"mean"``: their mean, the official scale (default); ``"sum"``: their sum. In float32.

    Shape:
        - student_first_adv, student_clean, student_last_clean: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> bat_loss(torch.zeros(1, 2), z, z, torch.tensor([0]), beta=1.0)
        tensor(0.7826)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    uniform_weight = check_positive(uniform_weight, "uniform_weight", allow_zero=True)
    check_choice(reduction, "reduction", REDUCTIONS)
    logits = _logits(student_first_adv, student_clean, student_last_clean)
    target = check_batch(logits, target, validate_args=validate_args)
    natural, robust, uniform = (
        reduce(term, reduction) for term in _terms(student_first_adv, student_clean, student_last_clean, target)
    )
    return natural + beta * robust + uniform_weight * uniform


class BATLoss(WeightedTerms):
    r""":func:`bat_loss` as a module, with its three terms apart for logging.

    Args:
        beta: weight $\beta$ of the TRADES term (6, ``--beta 6.0``).
        uniform_weight: weight $w$ of the uniform terms (1, hard-coded in the official code).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``, as :func:`bat_loss`.
        validate_args: check the values in eager mode (one read from the device per call).

    Example:
        >>> first_adv, clean, last_clean = torch.randn(3, 4, 5).unbind()
        >>> terms = BATLoss().terms(first_adv, clean, last_clean, torch.tensor([0, 1, 2, 3]))
        >>> torch.allclose(BATLoss().combine(*terms), terms[0] + 6.0 * terms[1] + terms[2])
        True
    """

    def __init__(
        self,
        *,
        beta: float = DEFAULT_BETA,
        uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(reduction, validate_args)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.uniform_weight = check_positive(uniform_weight, "uniform_weight", allow_zero=True)
        self.coefficients = (1.0, self.beta, self.uniform_weight)

    def terms(
        self, student_first_adv: Tensor, student_clean: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""The natural CE, the TRADES KL and the sum of the two uniform KLs, each reduced, before 1, $\beta$, $w$."""
        logits = _logits(student_first_adv, student_clean, student_last_clean)
        target = check_batch(logits, target, validate_args=self.validate_args)
        return self._terms(student_first_adv, student_clean, student_last_clean, target)

    def _terms(
        self, student_first_adv: Tensor, student_clean: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        natural, robust, uniform = _terms(student_first_adv, student_clean, student_last_clean, target)
        return reduce(natural, self.reduction), reduce(robust, self.reduction), reduce(uniform, self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta:.4g}, uniform_weight={self.uniform_weight:.4g}, reduction={self.reduction!r}"
