"""The settings of an L-inf PGD attack, validated once: :class:`PGDConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from typing_extensions import TypedDict, Unpack

from .._internal.checks import check_choice, check_finite_number, check_integer, check_positive

__all__ = ["AttackSettings", "PGDConfig", "PGDFields", "PGDSettings", "RandomStart"]

RandomStart = Literal["normal", "uniform"]
_STARTS = ("normal", "uniform", None)
DEFAULT_FP16_LOSS_SCALE = 2.0**12


class AttackSettings(TypedDict, total=False):
    """The :class:`PGDConfig` fields a training step takes as keywords from its user.

    All but ``eps`` and ``step_size`` (keywords of their own), ``student_temperature`` (the
    step takes it from its loss) and ``validate_args`` (the step's own flag).
    """

    steps: int
    random_start: RandomStart | None
    init_std: float
    project_start: bool
    clip_min: float
    clip_max: float
    loss_scale: float | None
    compile: bool
    compile_mode: str | None


class PGDSettings(AttackSettings, total=False):
    """Keyword overrides of a :class:`PGDConfig`: every field but ``eps`` and ``step_size``.

    ``eps`` and ``step_size`` are keyword arguments of their own where a per-sample tensor is
    allowed (:func:`~torch_absld.pgd`, ``KLPGDAttack.forward``).
    """

    student_temperature: float
    validate_args: bool


class PGDFields(PGDSettings, total=False):
    """Keyword changes to every field of a :class:`PGDConfig` (see :meth:`PGDConfig.replace`)."""

    eps: float
    step_size: float


@dataclass(frozen=True)
class PGDConfig:
    r"""Settings of an L-inf projected gradient ascent, checked once when made.

    The defaults are ABSLD's inner maximisation (the paper's and the authors' script): radius
    8/255, 10 steps of 2/255, start $x + 0.001\,\mathcal{N}(0, 1)$. One config serves the
    functional :func:`~torch_absld.pgd`, the module :class:`~torch_absld.KLPGDAttack`, the
    evaluation protocol and the training-step modules. Make variants with :meth:`replace`.

    Args:
        eps: L-inf radius, ``>= 0``.
        step_size: ascent step, ``> 0``.
        steps: number of steps, ``>= 1``.
        random_start: ``"normal"`` ($x + \sigma \mathcal{N}(0, 1)$, ABSLD/RSLAD), ``"uniform"``
            ($x + U(-\epsilon, \epsilon)$, Madry PGD) or ``None`` (start at $x$: deterministic).
        init_std: $\sigma$ of the normal start.
        project_start: project the start onto the eps-ball and ``[clip_min, clip_max]`` before
            the first gradient (default). ``False`` reproduces the authors' script, which takes
            the first gradient at the unprojected $x + 0.001\,\mathcal{N}(0, 1)$ and projects only
            after the first step (near the input bounds the results differ).
        clip_min: lower end of the valid input range.
        clip_max: upper end of the valid input range.
        student_temperature: $\tau_s$ of the ``"kl"`` objective.
        loss_scale: factor on the loss before the gradient (only its sign is used). ``None``
            picks $2^{12}$ under fp16 autocast or for fp16 inputs, where small gradients underflow
            to zero, else 1.
        compile: run each step through ``torch.compile(fullgraph=True)`` (the first call
            compiles; later calls with the same shapes and model reuse the graph). Needs a
            PyTorch whose TorchDynamo traces ``torch.autograd.grad``.
        compile_mode: ``mode`` passed to ``torch.compile`` (e.g. ``"max-autotune-no-cudagraphs"``).
        validate_args: check label and input values in eager mode (host syncs).

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
    validate_args: bool = True

    def __post_init__(self) -> None:
        for name, value in checked_fields(dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Unpack[PGDFields]) -> PGDConfig:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


def checked_fields(fields: Mapping[str, Any], name: Callable[[str], str] = str) -> dict[str, Any]:
    """The fields of a :class:`PGDConfig`, checked, with numbers as floats.

    ``name(field)`` is how an error message names a field (e.g. the key of a user's dict).
    """
    out = dict(fields)
    for key in ("eps", "init_std"):
        if key in out:
            out[key] = check_positive(out[key], name(key), allow_zero=True)
    for key in ("step_size", "student_temperature"):
        if key in out:
            out[key] = check_positive(out[key], name(key))
    if "steps" in out:
        out["steps"] = check_integer(out["steps"], name("steps"), minimum=1)
    if "random_start" in out:
        check_choice(out["random_start"], name("random_start"), _STARTS)
    if "clip_min" in out and "clip_max" in out:
        low = check_finite_number(out["clip_min"], name("clip_min"))
        high = check_finite_number(out["clip_max"], name("clip_max"))
        if low >= high:
            raise ValueError(f"Expected `{name('clip_min')}` < `{name('clip_max')}`, but got {low} >= {high}.")
        out["clip_min"], out["clip_max"] = low, high
    if out.get("loss_scale") is not None:
        out["loss_scale"] = check_positive(out["loss_scale"], name("loss_scale"))
    for key in ("project_start", "compile", "validate_args"):
        if key in out and not isinstance(out[key], bool):
            raise TypeError(f"Expected `{name(key)}` to be a bool, but got {type(out[key]).__name__}.")
    if out.get("compile_mode") is not None and not isinstance(out["compile_mode"], str):
        raise TypeError(f"Expected `{name('compile_mode')}` to be a str or None, but got {out['compile_mode']!r}.")
    if out.get("compile"):
        from .._internal.compile import require_input_gradient_tracing

        require_input_gradient_tracing()
    return out
