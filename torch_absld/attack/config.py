"""The settings of an L-inf PGD attack, checked once: :class:`PGDConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._internal.checks import check_bool, check_choice, check_finite_number, check_integer, check_positive

__all__ = ["ModelMode", "PGDConfig", "RandomStart"]

RandomStart = Literal["normal", "uniform"]
ModelMode = Literal["eval", "train"]
FP16_LOSS_SCALE = 2.0**12


@dataclass(frozen=True)
class PGDConfig:
    r"""Settings of an L-inf projected gradient ascent, checked when made.

    Defaults: ABSLD's inner maximisation (paper and authors' script), radius ``eps`` 8/255, ``steps``
    10 of ``step_size`` 2/255 from $x + 0.001\,\mathcal{N}(0, 1)$. Variants: :meth:`replace`.

    Args:
        random_start: ``"normal"`` ($x + \sigma \mathcal{N}(0, 1)$, $\sigma$ = ``init_std``),
            ``"uniform"`` ($x + U(-\epsilon, \epsilon)$) or ``None`` (start at $x$).
        project_start: project the start into the ball and ``[clip_min, clip_max]`` (the valid input
            range) before the first gradient; ``False`` is the authors' script.
        student_temperature: $\tau_s$ of the ``"kl"`` objective.
        loss_scale: factor on the loss before the gradient; ``None``: $2^{12}$ under fp16, else 1.
        compile: each step through ``torch.compile(fullgraph=True, mode=compile_mode)``.
        model_mode: every submodule in ``"eval"`` or ``"train"`` mode while attacking (restored after);
            ``"train"`` is the official SAT (Madry), ARD and Fair-ARD attack: batch-norm on batch
            statistics, its running averages moving at every step.
        validate_args: check input and target values in eager mode (one read per attack).

    Example:
        >>> config = PGDConfig(eps=0.1, steps=3)
        >>> config.replace(steps=20).steps, config.steps
        (20, 3)
    """

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    random_start: RandomStart | None = "normal"
    init_std: float = 1e-3
    project_start: bool = True
    clip_min: float = 0.0
    clip_max: float = 1.0
    student_temperature: float = 1.0
    loss_scale: float | None = None
    compile: bool = False
    compile_mode: str | None = None
    model_mode: ModelMode = "eval"
    validate_args: bool = True

    def __post_init__(self) -> None:
        for name, value in checked_fields(dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> PGDConfig:
        """A copy with ``changes`` (fields of :class:`PGDConfig`) applied and checked."""
        return dataclasses.replace(self, **changes)


def checked_fields(fields: Mapping[str, Any], name: Callable[[str], str] = str) -> dict[str, Any]:
    """The given fields of a :class:`PGDConfig`, checked, numbers as floats; ``name(field)`` names a field in errors."""
    out = dict(fields)
    for key, allow_zero in (("eps", True), ("init_std", True), ("step_size", False), ("student_temperature", False)):
        if key in out:
            out[key] = check_positive(out[key], name(key), allow_zero=allow_zero)
    if "steps" in out:
        out["steps"] = check_integer(out["steps"], name("steps"), minimum=1)
    if "random_start" in out:
        check_choice(out["random_start"], name("random_start"), ("normal", "uniform", None))
    if "model_mode" in out:
        check_choice(out["model_mode"], name("model_mode"), ("eval", "train"))
    if "clip_min" in out and "clip_max" in out:
        low = check_finite_number(out["clip_min"], name("clip_min"))
        high = check_finite_number(out["clip_max"], name("clip_max"))
        if low >= high:
            raise ValueError(f"Expected `{name('clip_min')}` < `{name('clip_max')}`, but got {low} >= {high}.")
        out["clip_min"], out["clip_max"] = low, high
    if out.get("loss_scale") is not None:
        out["loss_scale"] = check_positive(out["loss_scale"], name("loss_scale"))
    for key in ("project_start", "compile", "validate_args"):
        if key in out:
            check_bool(out[key], name(key))
    if out.get("compile_mode") is not None and not isinstance(out["compile_mode"], str):
        raise TypeError(f"Expected `{name('compile_mode')}` to be a str or None, but got {out['compile_mode']!r}.")
    if out.get("compile"):
        from .._internal.compile import require_input_gradient_tracing

        require_input_gradient_tracing()
    return out
