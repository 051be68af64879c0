r"""PGD adversarial training (Madry et al. 2018): cross-entropy on the adversarial examples."""

from __future__ import annotations

from torch import Tensor

from ._common import SampleReduction, WeightedTerms, check_batch, per_sample_ce, reduce

__all__ = ["SATLoss", "sat_loss"]


def sat_loss(
    student_adv: Tensor, target: Tensor, *, reduction: SampleReduction = "mean", validate_args: bool = True
) -> Tensor:
    r"""SAT: $\ell_i = \mathrm{CE}(f(x'_i), y_i)$ in float32; logits $(N, C)$ on $x'$, labels $(N,)$.

    ``"none"``: $\ell_i$ $(N,)$; ``"mean"`` (the authors' ``mean_xent``, ``model.py``) / ``"sum"``: mean / sum.

    Example:
        >>> import torch
        >>> sat_loss(torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0]), reduction="none")
        tensor([0.1269, 2.1269])
    """
    target = check_batch({"student_adv": student_adv}, target, reduction=reduction, validate_args=validate_args)
    return reduce(per_sample_ce(student_adv, target), reduction)


class SATLoss(WeightedTerms):
    """:func:`sat_loss` as a module; ``validate_args``: check the values (one read from the device per call)."""

    inputs, coefficients = ("student_adv", "target"), (1.0,)

    def __init__(self, *, reduction: SampleReduction = "mean", validate_args: bool = True) -> None:
        super().__init__(reduction, validate_args)

    @staticmethod
    def _sample_terms(student_adv: Tensor, target: Tensor) -> tuple[Tensor]:
        return (per_sample_ce(student_adv, target),)
