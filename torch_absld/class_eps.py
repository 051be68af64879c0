r"""Per-class attack radii $\epsilon_k = s_k\,\epsilon$, set once per epoch from per-class statistics (FRL, CFA).

:class:`ClassEpsilon` is the base: a :class:`~torch_absld.stats.ClassStatistics` that holds each
class's scale $s_k$ and turns it into per-sample radii and step sizes for the attack engine
(``attack(x, y, eps=radii, step_size=steps)``). Its subclasses say which statistic sets the
scales: :class:`CalibratedEpsilon` (CFA, here) from each class's training robust accuracy,
:class:`~torch_absld.multipliers.FRLMultipliers` (FRL) from class-wise errors on a validation split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

import torch
from torch import Tensor
from typing_extensions import Self, TypedDict

from ._internal.checks import (
    ProcessGroupArg,
    check_bool,
    check_integer,
    check_logits,
    check_positive,
    raise_first,
    values_checkable,
)
from ._internal.modules import loaded_tensor
from .stats import ClassStatistics, class_means

__all__ = ["CalibratedEpsilon", "CalibrationOptions", "ClassEpsilon", "class_calibration"]

DEFAULT_LAMBDA_EPS = 0.3
r"""CFA's base budget $\lambda_1$ for TRADES (paper Sec. 5.1; the official ``--lambda-1`` default is 0.5)."""
DEFAULT_LAMBDA_BETA = 0.5
r"""CFA's $\lambda_2$ of the class-wise TRADES $\beta$ (paper Sec. 5.1 and ``--lambda-2``)."""
DEFAULT_BETA = 6.0
r"""TRADES' $\beta$ that CFA calibrates (paper Sec. 5.1 and ``--beta 6``)."""


class ClassEpsilon(ClassStatistics):
    r"""Per-class scales $s \in \mathbb{R}^C$ of an attack radius: class $k$ is attacked within $s_k\,\epsilon$.

    A :class:`~torch_absld.stats.ClassStatistics` of $S$ per-sample quantities: subclasses add a
    batch's quantities with ``update`` and say in :meth:`rule` how the epoch's per-class sums
    (all-reduced across ranks with one ``all_reduce``) set the scales. :meth:`step`, at the end
    of an epoch, syncs, applies the rule once the epoch ``begin_epoch`` is next, resets the
    sums and counts the epoch. The scales start at 1 (the common radius) and serve the whole
    next epoch; everything is in ``state_dict()`` (scales, the epoch's partial sums, the counters).

    Args:
        num_classes: number of classes $C$.
        num_stats: number of per-sample quantities $S$.
        begin_epoch: the first epoch (0-based) trained with rule-made scales: ``step()`` at the
            end of epoch $e$ applies the rule when $e + 1 \ge$ ``begin_epoch`` (0 and 1: from the
            first epoch end on).
        scale_step: ``True``: each sample's step is ``step_size`` times the largest scale in its
            batch (FRL: the largest radius over 4); ``False``: the common ``step_size`` (CFA).
        process_group: ranks whose sums :meth:`step` adds; ``None`` is the default group.
        validate_args: check label values in eager mode (one host sync per call).

    Shape:
        - ``forward(target, eps, step_size)``: target $(N,)$ -> radii $(N,)$, steps $(N,)$ or a float
    """

    scale: Tensor

    def __init__(
        self,
        num_classes: int,
        num_stats: int = 1,
        *,
        begin_epoch: int = 0,
        scale_step: bool = False,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(num_classes, num_stats, process_group=process_group, validate_args=validate_args)
        self.begin_epoch = check_integer(begin_epoch, "begin_epoch", minimum=0)
        self.scale_step = check_bool(scale_step, "scale_step")
        self.epochs_stepped = 0
        self.updates = 0
        self.register_buffer("scale", torch.ones(self.num_classes, dtype=torch.float64))

    @property
    def calibrating(self) -> bool:
        """Whether the next :meth:`step` applies the rule (the epoch after it is ``begin_epoch`` or later)."""
        return self.epochs_stepped + 1 >= self.begin_epoch

    def radii(self, eps: float) -> Tensor:
        r"""Each class's radius $s_k\,\epsilon$, shape $(C,)$ float64."""
        return self.scale * check_positive(eps, "eps", allow_zero=True)

    def forward(
        self, target: Tensor, eps: float, step_size: float, *, present: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        r"""Each sample's radius $s_{y_i}\,\epsilon$ and step, for ``attack(x, y, eps=..., step_size=...)``.

        With ``scale_step`` the step is ``step_size`` times the largest scale of the classes in the
        batch: those of ``target``, or the classes marked in ``present`` (the whole batch across
        ranks under ``torch.distributed``, so that every rank uses the step of one process on the
        union).

        Shape:
            - target: $(N,)$ integer classes (any integer dtype)
            - present: $(C,)$ bool
            - Output: radii $(N,)$ float64; steps $(N,)$ float64 with ``scale_step``, else the float ``step_size``
        """
        eps = check_positive(eps, "eps", allow_zero=True)
        step_size = check_positive(step_size, "step_size")
        target = self._checked_labels(target, check_values=values_checkable(self.validate_args))
        if present is not None and (
            not isinstance(present, Tensor) or present.dtype != torch.bool or present.shape != self.scale.shape
        ):
            got = f"{present.dtype} of shape {tuple(present.shape)}" if isinstance(present, Tensor) else present
            raise ValueError(f"Expected `present` to be a bool tensor of shape ({self.num_classes},), but got {got}.")
        return self._forward(target, eps, step_size, present=present)

    def _forward(
        self, target: Tensor, eps: float, step_size: float, *, present: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        scales = self.scale[target]
        if not self.scale_step:
            return scales * eps, step_size
        if present is not None:
            largest = torch.where(present, self.scale, torch.zeros_like(self.scale)).amax()
        else:
            largest = scales.amax() if scales.numel() else scales.new_ones(())
        return scales * eps, (largest * step_size).expand(scales.shape)

    def rule(self, synced: Tensor, update: int) -> dict[str, Tensor]:
        """The new values of the buffers from the epoch's synced sums; ``update`` counts the updates from 1.

        Subclasses compute every new value before returning (nothing is assigned when they raise).
        """
        raise NotImplementedError

    @torch.no_grad()
    def step(self) -> Tensor:
        """End the epoch: sync the sums across ranks, apply the rule when it is due, reset the sums.

        Raises:
            ValueError: if an accumulated value is not finite, or the subclass's rule rejects the
                statistics (the buffers and the sums are then left as they are).

        Returns:
            The scales $s$, shape $(C,)$ (the buffer itself).
        """
        synced = self.synced()
        if not bool(torch.isfinite(synced).all()):
            raise ValueError(
                f"Expected finite accumulated statistics at `step()`, but got {synced.tolist()}; nothing was changed."
            )
        if self.calibrating:
            for name, value in self.rule(synced, self.updates + 1).items():
                getattr(self, name).copy_(value)
            self.updates += 1
        self.reset()
        self.epochs_stepped += 1
        return self.scale

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Self:
        """Follow device moves; keep the float64 buffers under whole-module casts (``.half()``)."""
        kept = dict(self._buffers)
        super()._apply(fn, recurse)
        for name, buffer in kept.items():
            if buffer is not None:
                self._buffers[name] = buffer.to(device=self._buffers[name].device)  # type: ignore[union-attr]
        return self

    def get_extra_state(self) -> dict[str, Any]:
        """The epoch and update counters."""
        return {"epochs_stepped": self.epochs_stepped, "updates": self.updates}

    def set_extra_state(self, state: Any) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.epochs_stepped, self.updates = _checked_counters(state)

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Reject buffers of the wrong shape or with non-finite values, and bad counters, before any copy."""
        for name, buffer in self._buffers.items():
            loaded = None if buffer is None else loaded_tensor(state_dict, prefix, name, buffer)
            if loaded is None:
                continue
            values = loaded.detach().to("cpu", torch.float64)
            nonnegative = name in ("scale", "class_beta")
            if not bool(torch.isfinite(values).all()) or (nonnegative and bool((values < 0).any())):
                bound = " and >= 0" if nonnegative else ""
                raise ValueError(
                    f"Expected the loaded `{name}` to be finite{bound}, but got {values.tolist()}. The checkpoint "
                    "is corrupt."
                )
        if prefix + "_extra_state" in state_dict:
            _checked_counters(state_dict[prefix + "_extra_state"])

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, begin_epoch={self.begin_epoch}, scale_step={self.scale_step}"


def _checked_counters(state: Any) -> tuple[int, int]:
    values: dict[Any, Any] = state if isinstance(state, dict) else {}
    epochs, updates = values.get("epochs_stepped"), values.get("updates")
    if _count(epochs) and _count(updates):
        return epochs, updates
    raise ValueError(
        f"Expected the extra state to be a dict with ints 'epochs_stepped' and 'updates' >= 0, but got {state!r}."
    )


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def class_calibration(previous: Tensor, accuracy: Tensor, present: Tensor, *, lam: float, base: float) -> Tensor:
    r"""CFA's calibration $(\lambda + t_k)\cdot b$ of each class seen, from its accuracy $t_k$ (Eqs. 6 and 7).

    With $b = 1$ it is the scale of the radius (CCM, $\epsilon_k = (\lambda_1 + t_k)\,\epsilon$), with
    $b = \beta$ the class-wise TRADES weight (CCR, $\beta_k = (\lambda_2 + t_k)\,\beta$). No clipping,
    as in the paper and the official code. Classes outside ``present`` keep ``previous``.

    Shape:
        - previous, accuracy, present: $(C,)$
        - Output: $(C,)$, dtype of ``previous``

    Example:
        >>> class_calibration(torch.ones(3), torch.tensor([0.5, 0.2, 0.0]), torch.tensor([True, True, False]),
        ...                   lam=0.3, base=1.0)
        tensor([0.8000, 0.5000, 1.0000])
    """
    lam = check_positive(lam, "lam", allow_zero=True)
    base = check_positive(base, "base", allow_zero=True)
    for name, value in (("previous", previous), ("accuracy", accuracy), ("present", present)):
        if not isinstance(value, Tensor) or value.dim() != 1 or value.shape != previous.shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"Expected `{name}` of shape (C,), one value per class like `previous`, but got {got}.")
    if present.dtype != torch.bool or not previous.is_floating_point():
        raise TypeError(
            f"Expected a bool `present` and a floating point `previous`, but got {present.dtype} and {previous.dtype}."
        )
    detached = accuracy.detach()
    flag = (present & ~((detached >= 0) & (detached <= 1))).any()
    raise_first([(flag, lambda: _raise_accuracy(detached))])
    return _calibration(previous, accuracy, present, lam, base)


def _raise_accuracy(accuracy: Tensor) -> None:
    raise ValueError(f"Expected `accuracy` in [0, 1] for every class in `present`, but got {accuracy.tolist()}.")


def _calibration(previous: Tensor, accuracy: Tensor, present: Tensor, lam: float, base: float) -> Tensor:
    """:func:`class_calibration` without its checks."""
    calibrated = (lam + accuracy.to(torch.float64)) * base
    return torch.where(present, calibrated, previous.to(torch.float64)).to(previous.dtype)


class CalibrationOptions(TypedDict, total=False):
    """Keyword options of :class:`CalibratedEpsilon`, passed on by :class:`~torch_absld.CFALoss`."""

    lambda_eps: float
    beta: float
    lambda_beta: float | None
    begin_epoch: int
    process_group: ProcessGroupArg


class CalibratedEpsilon(ClassEpsilon):
    r"""CFA's class-wise calibrated margin (CCM) and regularization (CCR), from the training robust accuracy.

    During an epoch, :meth:`update` adds whether each training sample's adversarial logits (those
    the loss is computed on) predict its label; at the end of the epoch :meth:`step` sets, from
    each class's robust accuracy $t_k$ over the epoch,

    $$\epsilon_k = (\lambda_1 + t_k)\,\epsilon, \qquad \beta_k = (\lambda_2 + t_k)\,\beta$$

    (paper Eqs. 6 and 7; :func:`class_calibration`), for the next epoch. Both start at
    $\epsilon$ and $\beta$. The official code divides each class's count of robust samples by
    $N / C$ (a balanced training set); the per-class mean here is the same there. A class
    absent from an epoch keeps its values.

    Args:
        num_classes: number of classes $C$.
        lambda_eps: base budget $\lambda_1$ (0.3: the paper's value for TRADES; the code's default is 0.5).
        beta: TRADES' $\beta$ (6).
        lambda_beta: $\lambda_2$ (0.5); ``None`` keeps $\beta_k = \beta$ (CCM only, e.g. AT + CFA).
        begin_epoch: first calibrated epoch (0: after the first epoch, as the paper's Algorithm 1;
            the official code starts at epoch 10, ``--begin 10``).
        process_group: group whose ranks share one epoch.
        validate_args: check label values in eager mode.

    Example:
        >>> ctrl = CalibratedEpsilon(2)
        >>> ctrl.update(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 0, 1]))
        >>> ctrl.step()
        tensor([0.8000, 0.3000], dtype=torch.float64)
        >>> ctrl.class_beta
        tensor([6., 3.], dtype=torch.float64)
    """

    class_beta: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        lambda_eps: float = DEFAULT_LAMBDA_EPS,
        beta: float = DEFAULT_BETA,
        lambda_beta: float | None = DEFAULT_LAMBDA_BETA,
        begin_epoch: int = 0,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(num_classes, begin_epoch=begin_epoch, process_group=process_group, validate_args=validate_args)
        self.lambda_eps = check_positive(lambda_eps, "lambda_eps", allow_zero=True)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.lambda_beta = None if lambda_beta is None else check_positive(lambda_beta, "lambda_beta", allow_zero=True)
        self.register_buffer("class_beta", torch.full((self.num_classes,), self.beta, dtype=torch.float64))

    @torch.no_grad()
    def update(self, values: Tensor, target: Tensor) -> None:
        """Add whether each sample's adversarial logits ``values`` predict its class (no gradient).

        Shape:
            - values: $(N, C)$ logits on the adversarial batch
            - target: $(N,)$ integer classes
        """
        check_logits(values, "values", self.num_classes, device=self.scale.device, owner=f"the {type(self).__name__}")
        target = self._checked_labels(target, values.shape[0], check_values=values_checkable(self.validate_args))
        self._update(values, target)

    @torch.no_grad()
    def _update(self, values: Tensor, target: Tensor) -> None:
        self.accumulate((values.detach().argmax(dim=1) == target).to(torch.float64), target, validate=False)

    def class_accuracy(self) -> tuple[Tensor, Tensor]:
        """This epoch's robust accuracy of each class so far on this rank, and which classes were seen.

        Shape:
            - Output: accuracy $(C,)$ float64 (``NaN`` for unseen classes), present $(C,)$ bool
        """
        means, present = class_means(self.accumulator)
        return means[0], present

    def rule(self, synced: Tensor, update: int) -> dict[str, Tensor]:
        r"""CCM and CCR (Eqs. 6 and 7) from the epoch's robust accuracy."""
        means, present = class_means(synced)
        new = {"scale": _calibration(self.scale, means[0], present, self.lambda_eps, 1.0)}
        if self.lambda_beta is not None:
            new["class_beta"] = _calibration(self.class_beta, means[0], present, self.lambda_beta, self.beta)
        return new

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, lambda_eps={self.lambda_eps:.4g}, beta={self.beta:.4g}, "
            f"lambda_beta={self.lambda_beta}, begin_epoch={self.begin_epoch}"
        )
