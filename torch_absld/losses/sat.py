r"""PGD adversarial training (Madry et al. 2018): cross-entropy on the adversarial examples."""

from __future__ import annotations

from torch import Tensor, nn

from .._internal.checks import check_bool, check_choice
from ._common import SAMPLE_REDUCTIONS, SampleReduction, check_batch, per_sample_ce, reduce_samples

__all__ = ["SATLoss", "sat_loss"]


def sat_loss(student_adv: Tensor, target: Tensor, *, reduction: SampleReduction = "mean") -> Tensor:
    r"""SAT's training loss: $\mathrm{CE}(f(x'), y)$ on the adversarial batch only, no clean term.

    Per sample: $\ell_i = -\log \mathrm{softmax}(f(x'_i))_{y_i}$, in float32 whatever the dtype
    of the logits. ``"mean"`` averages over the batch (the authors' ``mean_xent``, Madry et al.'s
    ``model.py``), ``"sum"`` sums, ``"none"`` returns $\ell_i$.

    Shape:
        - student_adv: $(N, C)$ logits of the model on $x'$
        - target: $(N,)$ integer classes in $[0, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> sat_loss(logits, torch.tensor([0, 0]), reduction="none")
        tensor([0.1269, 2.1269])
    """
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    _, target = check_batch({"student_adv": student_adv}, target)
    return reduce_samples(per_sample_ce(student_adv, target), reduction)


class SATLoss(nn.Module):
    """:func:`sat_loss` as a module.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        validate_args: check label values in eager mode (one host sync per call).

    Shape:
        - student_adv: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> SATLoss()(torch.zeros(4, 10), torch.tensor([0, 1, 2, 3]))
        tensor(2.3026)
    """

    def __init__(self, *, reduction: SampleReduction = "mean", validate_args: bool = True) -> None:
        super().__init__()
        check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
        self.reduction: SampleReduction = reduction
        self.validate_args = check_bool(validate_args, "validate_args")

    def forward(self, student_adv: Tensor, target: Tensor) -> Tensor:
        """The loss."""
        _, target = check_batch({"student_adv": student_adv}, target, check_values=self.validate_args)
        return self._forward(student_adv, target)

    def _forward(self, student_adv: Tensor, target: Tensor) -> Tensor:
        return reduce_samples(per_sample_ce(student_adv, target), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
