r"""ARD (Goldblum et al. 2020): tempered KL from the teacher's clean to the student's adversarial output."""

from __future__ import annotations

from torch import Tensor

from .._internal.checks import check_choice, check_positive, check_unit_interval
from ..kl import kl_terms
from ._common import SAMPLE_REDUCTIONS, SampleReduction, WeightedTerms, check_batch, per_sample_ce, reduce_samples

__all__ = ["ARDLoss", "ard_loss", "ard_sample_terms"]

DEFAULT_TEMPERATURE = 30.0
"""ARD's distillation temperature (``--temp 30.0``, ``main.py`` of the official code)."""
DEFAULT_ALPHA = 1.0
"""ARD's weight of the KL term (``--alpha 1.0``, ``main.py``): the clean cross-entropy term is off."""
_CLASSES = " The student and the teacher must have the same number of classes."


def ard_sample_terms(
    student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor, *, temperature: float
) -> tuple[Tensor, Tensor]:
    r"""ARD's two terms per sample, unweighted and unchecked.

    Returns $\big(T^2\,\mathrm{KL}_i / C,\ \mathrm{CE}_i\big)$ with
    $\mathrm{KL}_i = \mathrm{KL}(\mathrm{softmax}(z_{t,i} / T) \| \mathrm{softmax}(z_{s,i}(x') / T))$
    (teacher on the clean input, no gradient to it) and $\mathrm{CE}_i$ the student's clean
    cross-entropy at temperature 1. The $1/C$ is ``nn.KLDivLoss()``'s default mean over the
    $N \times C$ elements, which the authors' code uses: the batch mean of the first term is their
    ``temp * temp * KL_loss(...)``.

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ int64 classes (checked by the caller)
        - Output: two $(N,)$ float32 tensors
    """
    kl = kl_terms(student_adv, teacher, temperature, temperature, "none")
    scale = temperature * temperature / teacher.shape[1]
    return kl * scale, per_sample_ce(student_clean, target)


def ard_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    target: Tensor,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    alpha: float = DEFAULT_ALPHA,
    reduction: SampleReduction = "mean",
) -> Tensor:
    r"""The ARD loss: $\alpha T^2\,\mathbb{E}[\mathrm{KL}(p_T \| q_T(x'))] + (1 - \alpha)\,\mathrm{CE}(f_s(x), y)$.

    $p_T = \mathrm{softmax}(f_t(x) / T)$ is the teacher's **clean** output (no gradient),
    $q_T(x') = \mathrm{softmax}(f_s(x') / T)$ the student's adversarial output at the same $T$;
    $\mathbb{E}$ is the mean over the $N \times C$ elements (``nn.KLDivLoss()``'s default, as in
    the authors' ``main.py``: the batch-mean KL divided by $C$), and the cross-entropy is on the
    student's clean logits at temperature 1. Per sample:
    $\ell_i = \alpha T^2 \mathrm{KL}_i / C + (1 - \alpha) \mathrm{CE}_i$ (see :func:`ard_sample_terms`);
    ``"mean"`` averages $\ell_i$ over the batch (the authors' scale), ``"sum"`` sums, ``"none"``
    returns $\ell_i$. Computed in float32 whatever the dtype of the logits.

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> t, s = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
        >>> ard_loss(s, s, t, torch.tensor([0]), temperature=1.0)  # KL of one sample over C = 2
        tensor(1.3577)
    """
    temperature = check_positive(temperature, "temperature")
    alpha = check_unit_interval(alpha, "alpha")
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    _, target = check_batch(
        {"student_adv": student_adv, "student_clean": student_clean, "teacher": teacher}, target, hint=_CLASSES
    )
    kl, ce = ard_sample_terms(student_adv, student_clean, teacher, target, temperature=temperature)
    return reduce_samples(alpha * kl + (1 - alpha) * ce, reduction)


class ARDLoss(WeightedTerms):
    r""":func:`ard_loss` as a module, with its two terms apart for logging.

    Args:
        temperature: $T$ of the teacher's and the student's softmax in the KL term (30, ``main.py``).
        alpha: weight $\alpha$ of the KL term (1, ``main.py``: the clean cross-entropy is off).
        reduction: ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        validate_args: check label values in eager mode (one host sync per call).

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> loss_fn = ARDLoss(alpha=0.9)
        >>> s_adv, s_clean, t = torch.randn(3, 4, 10).unbind()
        >>> kl, ce = loss_fn.terms(s_adv, s_clean, t, torch.tensor([0, 1, 2, 3]))
        >>> torch.allclose(loss_fn(s_adv, s_clean, t, torch.tensor([0, 1, 2, 3])), 0.9 * kl + 0.1 * ce)
        True
    """

    reduction: SampleReduction

    def __init__(
        self,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(reduction, SAMPLE_REDUCTIONS, validate_args)
        self.temperature = check_positive(temperature, "temperature")
        self.alpha = check_unit_interval(alpha, "alpha")
        self.coefficients = (self.alpha, 1.0 - self.alpha)

    def forward(self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor) -> Tensor:
        """The loss: ``combine(*terms(...))``."""
        return self.combine(*self.terms(student_adv, student_clean, teacher, target))

    def _forward(self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor) -> Tensor:
        return self.combine(*self._terms(student_adv, student_clean, teacher, target))

    def terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        r"""The KL term $T^2\,\mathbb{E}[\mathrm{KL}]$ and the clean cross-entropy, each reduced."""
        logits = {"student_adv": student_adv, "student_clean": student_clean, "teacher": teacher}
        _, target = check_batch(logits, target, check_values=self.validate_args, hint=_CLASSES)
        return self._terms(student_adv, student_clean, teacher, target)

    def _terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        kl, ce = ard_sample_terms(student_adv, student_clean, teacher, target, temperature=self.temperature)
        return reduce_samples(kl, self.reduction), reduce_samples(ce, self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, alpha={self.alpha:.4g}, reduction={self.reduction!r}"
