""":class:`KLPGDAttack`: the PGD engine as a module that holds its settings."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._internal import checks
from .config import ModelMode, PGDConfig, RandomStart
from .engine import _attack, configured
from .objectives import Objective
from .projection import PerSample

__all__ = ["KLPGDAttack"]


def _setting(field: str) -> Any:
    """An attribute that reads and replaces one field of the attack's :class:`PGDConfig`."""
    return property(
        lambda a: getattr(a.config, field), lambda a, v: setattr(a, "config", a.config.replace(**{field: v}))
    )


class KLPGDAttack(nn.Module):
    r"""L-inf PGD (:func:`~torch_absld.pgd`) as a module holding its :class:`PGDConfig`.

    With probabilities $(N, C)$ as the target it is ABSLD's KL-PGD (Eq. 13), with labels $(N,)$
    CE-PGD. The model is held by reference (the ``state_dict`` holds no weights). ``config``
    (``None``: ``PGDConfig()``), changed by ``eps``, ``step_size`` and ``**settings``, reads and writes
    as attributes (``attack.eps``). ``objective``: as in :func:`~torch_absld.pgd`; ``generator`` draws
    every call's start; ``model_name`` names the model in errors (a training step's ``"student"``).

    Shape:
        - input: $(N, \dots)$; target: $(N, C)$ probabilities or $(N,)$ labels; Output: like ``input``

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> attack = KLPGDAttack(model, eps=0.1, step_size=0.05, steps=3)
        >>> attack(torch.rand(2, 12), torch.tensor([0, 2])).shape, attack.steps
        (torch.Size([2, 12]), 3)
    """

    eps: float = _setting("eps")
    step_size: float = _setting("step_size")
    steps: int = _setting("steps")
    random_start: RandomStart | None = _setting("random_start")
    init_std: float = _setting("init_std")
    project_start: bool = _setting("project_start")
    clip_min: float = _setting("clip_min")
    clip_max: float = _setting("clip_max")
    student_temperature: float = _setting("student_temperature")
    loss_scale: float | None = _setting("loss_scale")
    use_compile: bool = _setting("compile")
    compile_mode: str | None = _setting("compile_mode")
    model_mode: ModelMode = _setting("model_mode")
    validate_args: bool = _setting("validate_args")
    model: nn.Module

    def __init__(
        self,
        model: nn.Module,
        *,
        config: PGDConfig | None = None,
        objective: Objective = "auto",
        generator: torch.Generator | None = None,
        model_name: str = "model",
        eps: float | None = None,
        step_size: float | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}.")
        if isinstance(eps, Tensor) or isinstance(step_size, Tensor):
            name = "eps" if isinstance(eps, Tensor) else "step_size"
            raise TypeError(f"Expected `{name}` to be a float; pass per-sample tensors when calling the attack.")
        self.config: PGDConfig = configured(config, eps, step_size, settings)[0]
        if not callable(objective):
            checks.check_choice(objective, "objective", ("auto", "kl", "ce", "cw"))
        self.objective = objective
        self.generator = generator
        # A plain attribute, not a submodule: the attack's state_dict must not hold the weights.
        object.__setattr__(self, "model", model)
        if not isinstance(model_name, str):
            raise TypeError(f"Expected `model_name` to be a str, but got {type(model_name).__name__}.")
        self.model_name = model_name

    def forward(
        self,
        input: Tensor,
        target: Tensor,
        *,
        seed: int | None = None,
        eps: PerSample | None = None,
        step_size: PerSample | None = None,
    ) -> Tensor:
        """Adversarial examples for ``input``; ``eps`` / ``step_size`` (floats or $(N,)$) override the config."""
        checking = checks.values_checkable(self.validate_args)
        return self._forward(input, target, seed=seed, eps=eps, step_size=step_size, checking=checking)

    def _forward(
        self,
        input: Tensor,
        target: Tensor,
        *,
        seed: int | None = None,
        eps: PerSample | None = None,
        step_size: PerSample | None = None,
        checking: bool = False,
    ) -> Tensor:
        """:meth:`forward` without the value checks unless ``checking`` (by default no read: the caller checked)."""
        config, eps, step_size = configured(self.config, eps, step_size, {})
        args = (self.objective, eps, step_size, self.generator, seed, None, checking, self.model_name)
        return _attack(self.model, input, target, config, *args)

    def extra_repr(self) -> str:
        objective = getattr(self.objective, "__name__", self.objective)
        return (
            f"model={type(self.model).__name__}, eps={self.eps:.4g}, step_size={self.step_size:.4g}, "
            f"steps={self.steps}, random_start={self.random_start!r}, objective={objective!r}"
        )
