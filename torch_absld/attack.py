"""One L-inf PGD engine: KL to soft labels (ABSLD's inner maximisation), CE, or CW margin."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    at_least_float32,
    check_choice,
    check_finite_number,
    check_integer_labels,
    check_positive,
    check_probabilities,
    values_checkable,
)

__all__ = [
    "KLPGDAttack",
    "attack_objective",
    "compiled_pgd_step",
    "kl_pgd",
    "pgd",
    "pgd_step",
    "trace_input_gradients",
    "unwrap_model",
]

Objective = Literal["kl", "ce", "cw"]
RandomStart = Literal["normal", "uniform"]
_OBJECTIVES = ("auto", "kl", "ce", "cw")
_STARTS = ("normal", "uniform", None)
DEFAULT_FP16_LOSS_SCALE = 2.0**12


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module to attack: the one inside ``DistributedDataParallel`` / ``DataParallel``.

    Attacking the wrapper itself would run DDP's reducer hooks on a forward whose backward
    never reaches the parameters, leaving the next training step waiting.
    """
    inner = getattr(model, "module", None)
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    if isinstance(model, wrappers) and isinstance(inner, nn.Module):
        return inner
    return model


def attack_objective(
    logits: Tensor,
    target: Tensor,
    objective: Objective,
    *,
    student_temperature: float = 1.0,
) -> Tensor:
    r"""The summed loss that PGD ascends, computed in float32.

    - ``"kl"``: $\sum_b \mathrm{KL}(p_b \,\|\, \mathrm{softmax}(z_b / \tau_s))$, ``target`` the
      soft labels $p$ $(N, C)$;
    - ``"ce"``: $\sum_b \mathrm{CE}(z_b, y_b)$, ``target`` integer labels $(N,)$;
    - ``"cw"``: $\sum_b \big(\max_{c \ne y_b} z_{b,c} - z_{b,y_b}\big)$, the CW margin.

    Shape:
        - logits: $(N, C)$
        - target: $(N, C)$ probabilities for ``"kl"``, else $(N,)$ integers
        - Output: scalar
    """
    logits = at_least_float32(logits)
    if objective == "kl":
        log_q = torch.log_softmax(logits / student_temperature, dim=1)
        return F.kl_div(log_q, target.to(log_q.dtype), reduction="sum")
    if objective == "ce":
        return F.cross_entropy(logits, target, reduction="sum")
    true_logit = logits.gather(1, target.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, target.unsqueeze(1), float("-inf"))
    return (others.amax(dim=1) - true_logit).sum()


def pgd_step(
    model: nn.Module,
    x_adv: Tensor,
    x: Tensor,
    target: Tensor,
    *,
    objective: Objective,
    eps: float,
    step_size: float,
    clip_min: float,
    clip_max: float,
    student_temperature: float = 1.0,
    loss_scale: float = 1.0,
    model_dtype: torch.dtype | None = None,
) -> Tensor:
    r"""One ascent step: $x' = \Pi_{[x-\epsilon, x+\epsilon] \cap [lo, hi]}(x' + s\,\mathrm{sign}(\nabla_{x'} L))$.

    The gradient is taken with respect to ``x_adv`` only (parameters' ``.grad`` untouched);
    ``x_adv``, ``x`` and the projection stay in float32 whatever autocast does to the model.
    A non-finite gradient entry (fp16 overflow) counts as no signal for that pixel. With
    ``model_dtype`` (e.g. ``torch.bfloat16`` for a model cast to bf16) the model is fed the
    iterate cast to that dtype; the iterate and the projection stay float32.

    Shape:
        - x_adv, x: $(N, \dots)$ float32
        - target: see :func:`attack_objective`
        - Output: $(N, \dots)$ float32, the next iterate (detached)
    """
    lower, upper = _projection_bounds(x, eps, clip_min, clip_max)
    return _ascent_step(
        model,
        x_adv,
        lower,
        upper,
        target,
        objective=objective,
        step_size=step_size,
        student_temperature=student_temperature,
        loss_scale=loss_scale,
        model_dtype=model_dtype,
    )


def _projection_bounds(x: Tensor, eps: float, clip_min: float, clip_max: float) -> tuple[Tensor, Tensor]:
    """Per-element bounds with ``clamp(v, lower, upper) == clamp(clamp(v, x - eps, x + eps), lo, hi)``.

    Exact for every ``v`` (also when ``x`` lies outside ``[lo, hi]``), so an attack computes
    them once instead of four elementwise passes per step.
    """
    lower = torch.clamp(torch.clamp(x - eps, min=clip_min), max=clip_max)
    upper = torch.clamp(torch.clamp(x + eps, max=clip_max), min=clip_min)
    return lower, upper


def _ascent_step(
    model: nn.Module,
    x_adv: Tensor,
    lower: Tensor,
    upper: Tensor,
    target: Tensor,
    *,
    objective: Objective,
    step_size: float,
    student_temperature: float,
    loss_scale: float,
    model_dtype: torch.dtype | None = None,
) -> Tensor:
    x_adv = x_adv.detach().requires_grad_(True)
    model_input = x_adv if model_dtype is None else x_adv.to(model_dtype)
    loss = attack_objective(model(model_input), target, objective, student_temperature=student_temperature)
    if loss_scale != 1.0:
        loss = loss * loss_scale
    (grad,) = torch.autograd.grad(loss, x_adv)
    direction = torch.nan_to_num(grad, nan=0.0).sign_()
    # add(alpha=) is one pass; step_size * (+-1 or 0) is exact, so it equals x_adv + step_size * direction.
    return torch.clamp(torch.add(x_adv.detach(), direction, alpha=step_size), lower, upper)


_compiled_steps: dict[str | None, Callable[..., Tensor]] = {}


def compiled_pgd_step(mode: str | None = None) -> Callable[..., Tensor]:
    """:func:`pgd_step` compiled with ``torch.compile(fullgraph=True)``, built once per ``mode``.

    The gradient with respect to the input is traced into the graph (the model's forward and
    backward become one compiled kernel sequence). Call it inside :func:`trace_input_gradients`.
    """
    if mode not in _compiled_steps:
        _compiled_steps[mode] = torch.compile(pgd_step, fullgraph=True, mode=mode)
    return _compiled_steps[mode]


def trace_input_gradients() -> contextlib.AbstractContextManager[None]:
    """Let ``torch.compile`` trace ``torch.autograd.grad`` (off by default in dynamo)."""
    return torch._dynamo.config.patch(trace_autograd_ops=True)  # type: ignore[no-any-return]


def _start(
    x: Tensor,
    random_start: RandomStart | None,
    eps: float,
    init_std: float,
    generator: torch.Generator | None,
) -> Tensor:
    if random_start is None:
        return x.clone()
    device = generator.device if generator is not None else x.device
    if random_start == "normal":
        noise = init_std * torch.randn(x.shape, generator=generator, device=device, dtype=torch.float32)
    else:
        noise = torch.rand(x.shape, generator=generator, device=device, dtype=torch.float32)
        noise = (2 * noise - 1) * eps
    return x + noise.to(x.device)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own previous mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _fp16_autocast_active(device_type: str) -> bool:
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16


def pgd(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    *,
    objective: Objective | Literal["auto"] = "auto",
    eps: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 10,
    random_start: RandomStart | None = "normal",
    init_std: float = 1e-3,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    student_temperature: float = 1.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    loss_scale: float | None = None,
    validate_args: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
    start: Tensor | None = None,
) -> Tensor:
    r"""L-inf projected gradient ascent on ``objective`` around ``input``.

    The model runs in eval mode for the attack's duration and every submodule gets its own
    previous mode back afterwards, also when an exception is raised. Gradients are taken with
    respect to the input only, under ``torch.enable_grad()`` (so it works inside
    ``torch.no_grad()``, ``torch.inference_mode()`` and on frozen models). ``input`` is never
    modified.

    Args:
        model: the network under attack (a DDP / DataParallel wrapper is unwrapped).
        input: clean inputs inside ``[clip_min, clip_max]``. bf16 / fp16 inputs (a model cast to
            that dtype) are attacked in float32 and fed to the model in their own dtype; the
            result is rounded to it.
        target: soft labels $(N, C)$ or integer labels $(N,)$.
        objective: ``"kl"`` (KL to soft labels), ``"ce"``, ``"cw"`` (margin), or ``"auto"``:
            ``"kl"`` for floating point ``target``, ``"ce"`` for integer labels.
        eps: L-inf radius, ``>= 0``.
        step_size: ascent step, ``> 0``.
        steps: number of steps, ``>= 1``.
        random_start: ``"normal"`` ($x + \sigma \mathcal{N}(0, 1)$, ABSLD/RSLAD), ``"uniform"``
            ($x + U(-\epsilon, \epsilon)$, Madry PGD) or ``None`` (start at $x$: deterministic).
            The start is projected onto the eps-ball and ``[clip_min, clip_max]`` before the first
            gradient (the authors' script projects only after the first step: with the normal
            start of std 0.001 the two differ by at most that noise on the first gradient).
        init_std: $\sigma$ of the normal start.
        clip_min: lower end of the valid input range.
        clip_max: upper end of the valid input range.
        student_temperature: $\tau_s$ of the KL objective.
        generator: random generator for the start (reproducible attacks).
        seed: shorthand for a generator seeded with ``seed`` on the input's device.
        loss_scale: factor on the loss before the gradient (only its sign is used). ``None``
            picks $2^{12}$ under fp16 autocast or for fp16 inputs, where small gradients underflow
            to zero, else 1.
        validate_args: check label and input values in eager mode (host syncs).
        compile: run each step through :func:`compiled_pgd_step` (``torch.compile`` with
            ``fullgraph=True``; the first call compiles, later calls with the same shapes and
            model reuse the graph).
        compile_mode: ``mode`` passed to ``torch.compile`` (e.g. ``"max-autotune-no-cudagraphs"``).
        start: explicit first iterate, like ``input``; replaces ``random_start`` and is projected
            onto the ball and the valid range (e.g. noise that depends on each sample only, so
            that a sample's start does not change with the batch it is in).

    Shape:
        - input: $(N, \dots)$
        - target: $(N, C)$ or $(N,)$
        - Output: $(N, \dots)$, dtype of ``input``, within ``eps`` of ``input`` and inside
          ``[clip_min, clip_max]``
    """
    if torch.is_inference_mode_enabled():
        # No input gradient exists inside torch.inference_mode(): the attack runs outside it.
        with torch.inference_mode(False):
            return pgd(**locals())
    eps = check_positive(eps, "eps", allow_zero=True)
    step_size = check_positive(step_size, "step_size")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Expected `steps` to be an int >= 1, but got {steps!r}.")
    check_choice(random_start, "random_start", _STARTS)
    check_choice(objective, "objective", _OBJECTIVES)
    init_std = check_positive(init_std, "init_std", allow_zero=True)
    clip_min = check_finite_number(clip_min, "clip_min")
    clip_max = check_finite_number(clip_max, "clip_max")
    if clip_min >= clip_max:
        raise ValueError(f"Expected `clip_min` < `clip_max`, but got {clip_min} >= {clip_max}.")
    if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
        raise TypeError("Expected `input` to be a floating point tensor of shape (N, ...).")
    resolved = _resolve_objective(objective, target)
    _check_target(target, resolved, input.shape[0], validate_args)
    if target.is_inference():  # made under torch.inference_mode(): it cannot be saved for backward
        target = target.clone()
    if values_checkable(validate_args) and input.numel() > 0:
        low, high = torch.aminmax(input.detach())
        if float(low) < clip_min or float(high) > clip_max:
            raise ValueError(
                f"Expected `input` values in [clip_min, clip_max] = [{clip_min}, {clip_max}], but got "
                f"values in [{float(low):.4g}, {float(high):.4g}]. Attack in pixel space and put the "
                "normalisation inside the model (torch_absld.Normalize)."
            )
    if seed is not None:
        generator = torch.Generator(device=input.device).manual_seed(seed)
    attacked = unwrap_model(model)
    x = at_least_float32(input.detach())  # float64 models are attacked in float64
    if x.is_inference():
        x = x.clone()
    # bf16 / fp16 inputs (a model cast to that dtype): iterate in float32, feed the model its dtype.
    model_dtype = input.dtype if input.dtype != x.dtype else None
    if loss_scale is None:
        fp16 = _fp16_autocast_active(x.device.type) or model_dtype == torch.float16
        loss_scale = DEFAULT_FP16_LOSS_SCALE if fp16 else 1.0
    if start is None:
        start = _start(x, random_start, eps, init_std, generator)
    elif not isinstance(start, Tensor) or start.shape != input.shape:
        raise ValueError(f"Expected `start` to be a tensor of shape {tuple(input.shape)} like `input`.")
    else:
        start = start.detach().to(x)
    lower, upper = _projection_bounds(x, eps, clip_min, clip_max)
    x_adv = torch.clamp(start, lower, upper)
    tracing = trace_input_gradients() if compile else contextlib.nullcontext()
    with _eval_mode(attacked), torch.enable_grad(), tracing:
        for _ in range(steps):
            if compile:
                x_adv = compiled_pgd_step(compile_mode)(
                    attacked,
                    x_adv,
                    x,
                    target,
                    objective=resolved,
                    eps=eps,
                    step_size=step_size,
                    clip_min=clip_min,
                    clip_max=clip_max,
                    student_temperature=student_temperature,
                    loss_scale=loss_scale,
                    model_dtype=model_dtype,
                )
            else:
                x_adv = _ascent_step(
                    attacked,
                    x_adv,
                    lower,
                    upper,
                    target,
                    objective=resolved,
                    step_size=step_size,
                    student_temperature=student_temperature,
                    loss_scale=loss_scale,
                    model_dtype=model_dtype,
                )
    return x_adv.to(input.dtype)


def _resolve_objective(objective: str, target: Tensor) -> Objective:
    if not isinstance(target, Tensor):
        raise TypeError(f"Expected `target` to be a torch.Tensor, but got {type(target).__name__}.")
    if objective == "auto":
        return "kl" if target.is_floating_point() else "ce"
    return objective  # type: ignore[return-value]


def _check_target(target: Tensor, objective: Objective, batch_size: int, validate_args: bool) -> None:
    if objective == "kl":
        check_probabilities(target, "target", check_values=values_checkable(validate_args))
        if target.shape[0] != batch_size:
            raise ValueError(f"Expected `target` of shape (N, C) with N = {batch_size}, but got {tuple(target.shape)}.")
        return
    # The class count is the model's output width, which cross_entropy / gather check.
    check_integer_labels(target, None, batch_size=batch_size, check_values=values_checkable(validate_args))


def kl_pgd(
    model: nn.Module,
    input: Tensor,
    soft_labels: Tensor,
    *,
    eps: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 10,
    random_start: RandomStart | None = "normal",
    init_std: float = 1e-3,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    student_temperature: float = 1.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    loss_scale: float | None = None,
    validate_args: bool = True,
    compile: bool = False,
) -> Tensor:
    r"""ABSLD's inner maximisation (Eq. 13): PGD on $\mathrm{KL}(p \,\|\, \mathrm{softmax}(f(x') / \tau_s))$.

    Defaults are the paper's: eps 8/255, step 2/255, 10 steps, Gaussian start of std 0.001.
    See :func:`pgd` for every argument.

    Shape:
        - input: $(N, \dots)$ in $[0, 1]$
        - soft_labels: $(N, C)$ probabilities
        - Output: like ``input``
    """
    return pgd(
        model,
        input,
        soft_labels,
        objective="kl",
        eps=eps,
        step_size=step_size,
        steps=steps,
        random_start=random_start,
        init_std=init_std,
        clip_min=clip_min,
        clip_max=clip_max,
        student_temperature=student_temperature,
        generator=generator,
        seed=seed,
        loss_scale=loss_scale,
        validate_args=validate_args,
        compile=compile,
    )


class KLPGDAttack(nn.Module):
    r"""L-inf PGD that maximises KL to soft labels (probabilities) or CE to integer labels.

    ``attack(x, target)`` runs :func:`pgd`: with probabilities $(N, C)$ it is ABSLD's KL-PGD
    (Eq. 13), with integer labels $(N,)$ it is standard CE-PGD; ``objective="cw"`` gives the
    CW-inf margin attack. The model is held by reference, not registered as a submodule, so
    the attack's ``state_dict`` holds no weights.

    Args:
        model: the network under attack (a DDP wrapper is unwrapped).
        eps: L-inf radius (see :func:`pgd`).
        step_size: ascent step.
        steps: number of steps.
        random_start: ``"normal"``, ``"uniform"`` or ``None``.
        init_std: std of the normal start.
        clip_min: lower end of the valid input range.
        clip_max: upper end of the valid input range.
        student_temperature: $\tau_s$ of the KL objective.
        loss_scale: factor on the loss before the gradient (``None``: automatic under fp16).
        validate_args: check label and input values in eager mode.
        objective: ``"auto"`` (default), ``"kl"``, ``"ce"`` or ``"cw"``.
        generator: random generator used by every call (reproducible sequences of attacks).
        compile: compile each attack step with ``torch.compile(fullgraph=True)``.
        compile_mode: ``mode`` for ``torch.compile``.

    Shape:
        - input: $(N, \dots)$
        - target: $(N, C)$ probabilities or $(N,)$ integer labels
        - Output: like ``input``

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> attack = KLPGDAttack(model, eps=0.1, step_size=0.05, steps=3)
        >>> x_adv = attack(torch.rand(2, 12), torch.tensor([0, 2]))
        >>> x_adv.shape
        torch.Size([2, 12])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        random_start: RandomStart | None = "normal",
        init_std: float = 1e-3,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        objective: Objective | Literal["auto"] = "auto",
        student_temperature: float = 1.0,
        generator: torch.Generator | None = None,
        loss_scale: float | None = None,
        validate_args: bool = True,
        compile: bool = False,
        compile_mode: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}.")
        self.eps = check_positive(eps, "eps", allow_zero=True)
        self.step_size = check_positive(step_size, "step_size")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"Expected `steps` to be an int >= 1, but got {steps!r}.")
        check_choice(random_start, "random_start", _STARTS)
        check_choice(objective, "objective", _OBJECTIVES)
        self.steps = steps
        self.random_start: RandomStart | None = random_start
        self.init_std = check_positive(init_std, "init_std", allow_zero=True)
        self.clip_min = check_finite_number(clip_min, "clip_min")
        self.clip_max = check_finite_number(clip_max, "clip_max")
        if self.clip_min >= self.clip_max:
            raise ValueError(f"Expected `clip_min` < `clip_max`, but got {self.clip_min} >= {self.clip_max}.")
        self.objective: Objective | Literal["auto"] = objective
        self.student_temperature = check_positive(student_temperature, "student_temperature")
        self.generator = generator
        self.loss_scale = loss_scale
        self.validate_args = validate_args
        self.use_compile = compile
        self.compile_mode = compile_mode
        # A plain attribute, not a submodule: the attack's state_dict must not hold the weights.
        object.__setattr__(self, "model", model)

    model: nn.Module

    def forward(self, input: Tensor, target: Tensor, *, seed: int | None = None) -> Tensor:
        """Adversarial examples for ``input``; see :func:`pgd`."""
        return pgd(
            self.model,
            input,
            target,
            objective=self.objective,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            random_start=self.random_start,
            init_std=self.init_std,
            clip_min=self.clip_min,
            clip_max=self.clip_max,
            student_temperature=self.student_temperature,
            generator=self.generator,
            seed=seed,
            loss_scale=self.loss_scale,
            validate_args=self.validate_args,
            compile=self.use_compile,
            compile_mode=self.compile_mode,
        )

    def extra_repr(self) -> str:
        return (
            f"model={type(self.model).__name__}, eps={self.eps:.4g}, step_size={self.step_size:.4g}, "
            f"steps={self.steps}, random_start={self.random_start!r}, objective={self.objective!r}"
        )
