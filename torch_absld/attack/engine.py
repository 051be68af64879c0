"""One L-inf PGD engine: the functional :func:`pgd` and :func:`kl_pgd`, and the private ascent step."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

from .._internal.checks import (
    ValueCheck,
    at_least_float32,
    check_device,
    input_flag,
    label_range_flag,
    probability_flag,
    raise_first,
    values_checkable,
)
from .._internal.compile import compiled, trace_input_gradients
from .._internal.modules import eval_mode, module_device, module_dtype, unwrap_model
from .config import DEFAULT_FP16_LOSS_SCALE, PGDConfig, PGDSettings, checked_fields
from .objectives import (
    Objective,
    ObjectiveFn,
    ObjectiveName,
    check_objective,
    check_output_width,
    check_target,
    resolve_objective,
    summed_objective,
)
from .projection import per_sample_view, projection_bounds, round_into_ball

__all__ = ["kl_pgd", "pgd"]

_DEFAULT_CONFIG = PGDConfig()
PerSample = float | Tensor


def pgd(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    *,
    config: PGDConfig | None = None,
    objective: Objective = "auto",
    eps: PerSample | None = None,
    step_size: PerSample | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    start: Tensor | None = None,
    **settings: Unpack[PGDSettings],
) -> Tensor:
    r"""L-inf projected gradient ascent on ``objective`` around ``input``.

    Each step: $x' \leftarrow \Pi_{[x-\epsilon, x+\epsilon] \cap [lo, hi]}\big(x' + s\,
    \mathrm{sign}(\nabla_{x'} L)\big)$. The model runs in eval mode for the attack's duration
    and every submodule gets its own previous mode back afterwards, also when an exception is
    raised. Gradients are taken with respect to the input only (parameters' ``.grad``
    untouched), under ``torch.enable_grad()``: it works inside ``torch.no_grad()``,
    ``torch.inference_mode()`` and on frozen models. ``input`` is never modified. The iterate
    and the projection stay in float32 whatever autocast does to the model; a non-finite
    gradient entry (fp16 overflow) counts as no signal for that pixel.

    The settings come from ``config`` (:class:`PGDConfig`, default: ABSLD's attack), changed
    by the keyword ``settings`` (``steps=...``, ``random_start=...``: the fields of
    :class:`PGDConfig`). ``eps`` and ``step_size`` may also be per-sample tensors: the ball,
    the uniform start and the projection then hold for each sample with its own radius.

    Args:
        model: the network under attack (a DDP / DataParallel wrapper is unwrapped).
        input: clean inputs inside ``[clip_min, clip_max]``. bf16 / fp16 inputs (a model cast to
            that dtype) are attacked in float32 and fed to the model in their own dtype; the
            result is rounded to it.
        target: soft labels $(N, C)$ or integer labels $(N,)$, or what a callable objective takes.
        config: the attack's settings; ``None`` is ``PGDConfig()``.
        objective: ``"kl"`` (KL to soft labels), ``"ce"``, ``"cw"`` (margin), ``"auto"``
            (``"kl"`` for floating point ``target``, ``"ce"`` for integer labels), or a callable
            ``objective(output, target)`` returning the summed loss to ascend from whatever the
            model returns (e.g. a module running a student and its teacher together).
        eps: L-inf radius: a float, or a tensor $(N,)$ of per-sample radii; replaces ``config.eps``.
        step_size: ascent step: a float or a tensor $(N,)$; replaces ``config.step_size``.
        generator: random generator for the start (reproducible attacks).
        seed: shorthand for a generator seeded with ``seed`` on the input's device.
        start: explicit first iterate, like ``input``; replaces ``random_start`` (projected when
            ``project_start``), e.g. noise that depends on each sample only.
        **settings: changes to ``config`` (:class:`PGDSettings`).

    Shape:
        - input: $(N, \dots)$
        - target: $(N, C)$ or $(N,)$
        - eps, step_size: scalars or $(N,)$
        - Output: $(N, \dots)$, dtype of ``input``, within ``eps`` of ``input`` and inside
          ``[clip_min, clip_max]``
    """
    config, eps, step_size = configured(config, eps, step_size, settings)
    checking = values_checkable(config.validate_args)
    return _attack(model, input, target, config, objective, eps, step_size, generator, seed, start, checking)


def _pgd(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    *,
    config: PGDConfig | None = None,
    objective: Objective = "auto",
    eps: PerSample | None = None,
    step_size: PerSample | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    start: Tensor | None = None,
    **settings: Unpack[PGDSettings],
) -> Tensor:
    """:func:`pgd` without the value checks (no read from the device): the caller checked its inputs."""
    config, eps, step_size = configured(config, eps, step_size, settings)
    return _attack(model, input, target, config, objective, eps, step_size, generator, seed, start, False)


def kl_pgd(
    model: nn.Module,
    input: Tensor,
    soft_labels: Tensor,
    *,
    config: PGDConfig | None = None,
    eps: PerSample | None = None,
    step_size: PerSample | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    **settings: Unpack[PGDSettings],
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
        config=config,
        objective="kl",
        eps=eps,
        step_size=step_size,
        generator=generator,
        seed=seed,
        **settings,
    )


def configured(
    config: PGDConfig | None, eps: PerSample | None, step_size: PerSample | None, settings: PGDSettings
) -> tuple[PGDConfig, PerSample, PerSample]:
    """The config with the scalar overrides applied, and the radius and step each call uses."""
    if config is not None and not isinstance(config, PGDConfig):
        raise TypeError(f"Expected `config` to be a PGDConfig or None, but got {type(config).__name__}.")
    changes: dict[str, Any] = dict(settings)
    if eps is not None and not isinstance(eps, Tensor):
        changes["eps"] = eps
    if step_size is not None and not isinstance(step_size, Tensor):
        changes["step_size"] = step_size
    base = config if config is not None else _DEFAULT_CONFIG
    config = base.replace(**changes) if changes else base
    radius = eps if isinstance(eps, Tensor) else config.eps
    return config, radius, step_size if isinstance(step_size, Tensor) else config.step_size


def _attack(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    config: PGDConfig,
    objective: Objective,
    eps: PerSample,
    step_size: PerSample,
    generator: torch.Generator | None,
    seed: int | None,
    start: Tensor | None,
    checking: bool,
    model_name: str = "model",
) -> Tensor:
    """The attack with a config made; ``checking``: run the value checks (one read); ``model_name`` names the model."""
    # No input gradient exists inside torch.inference_mode(): the attack runs outside it.
    with torch.inference_mode(False):
        if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
            got = f"{input.dtype} of shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"Expected `input` to be a floating point tensor of shape (N, ...), but got {got}.")
        attacked = unwrap_model(model)
        check_device(input, module_device(attacked), "input", f"`{model_name}`")
        resolved = resolve_objective(objective, target)
        batch = input.shape[0]
        target = check_target(target, resolved, batch, False, device=input.device)
        if isinstance(target, Tensor) and target.is_inference():  # cannot be saved for backward
            target = target.clone()
        eps = _per_sample(eps, "eps", input)
        step_size = _per_sample(step_size, "step_size", input)
        generator = _seeded(seed, generator, input.device)
        x = at_least_float32(input.detach())  # float64 models are attacked in float64
        if x.is_inference():
            x = x.clone()
        # The iterate stays in float32 (or float64); the model gets it in its own dtype (a cast model).
        feed = module_dtype(attacked) or input.dtype
        model_dtype = feed if feed != x.dtype else None
        scale = config.loss_scale
        if scale is None:
            fp16 = _fp16_autocast_active(x.device.type) or model_dtype == torch.float16
            scale = DEFAULT_FP16_LOSS_SCALE if fp16 else 1.0
        radius, step = per_sample_view(eps, x), per_sample_view(step_size, x)
        temperature = config.student_temperature
        ascent = compiled(_ascent_step, config.compile_mode) if config.compile else _ascent_step
        tracing = trace_input_gradients() if config.compile else contextlib.nullcontext()
        with eval_mode(attacked), torch.enable_grad(), tracing:
            if checking:
                _check_values(attacked, input, x, model_dtype, target, resolved, config, (eps, step_size), model_name)
            if batch == 0:
                return input.detach().clone()
            lower, upper = projection_bounds(x, eps, config.clip_min, config.clip_max)
            x_adv = _first_iterate(x, start, config, radius, generator)
            if config.project_start:
                x_adv = torch.clamp(x_adv, lower, upper)
            for _ in range(config.steps):
                x_adv = ascent(
                    attacked, x_adv, lower, upper, target, resolved, step, temperature, scale, model_dtype, model_name
                )
        return round_into_ball(x_adv, input, eps, config.clip_min, config.clip_max)


def _seeded(seed: object, generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator seeded with ``seed`` on ``device``, or ``generator`` when ``seed`` is None."""
    if seed is None:
        return generator
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"Expected `seed` to be an int or None, but got {type(seed).__name__}.")
    return torch.Generator(device=device).manual_seed(int(seed))


def _check_values(
    model: nn.Module,
    input: Tensor,
    x: Tensor,
    model_dtype: torch.dtype | None,
    target: Tensor,
    objective: ObjectiveName | ObjectiveFn,
    config: PGDConfig,
    per_sample: tuple[PerSample, PerSample],
    model_name: str,
) -> None:
    """The value checks of one attack, read back from the device in one transfer.

    Integer labels are checked against the model's class count, read from its output on the
    first sample (one forward of one sample, without gradient).
    """
    checks = [input_flag(input, config.clip_min, config.clip_max)]
    for name, value, allow_zero in (("eps", per_sample[0], True), ("step_size", per_sample[1], False)):
        if isinstance(value, Tensor) and value.numel() > 0:
            checks.append(_radius_flag(value, name, allow_zero))
    if objective == "kl":
        checks.append(probability_flag(target, "target"))
    elif objective in ("ce", "cw") and x.shape[0] > 0:
        with torch.no_grad():
            probe = x[:1] if model_dtype is None else x[:1].to(model_dtype)
            output = model(probe)
        check_output_width(output, target[:1], objective, model_name)
        checks.append(label_range_flag(target, output.shape[1]))
    raise_first(checks)


def _radius_flag(value: Tensor, name: str, allow_zero: bool) -> ValueCheck:
    flag = (~torch.isfinite(value) | (value < 0 if allow_zero else value <= 0)).any()

    def raise_error() -> None:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Expected every `{name}` finite and {bound}, but got {value.tolist()}.")

    return flag, raise_error


def _per_sample(value: PerSample, name: str, input: Tensor) -> PerSample:
    """A scalar as it is; a per-sample tensor checked (shape, dtype, device; values in :func:`_check_values`)."""
    if not isinstance(value, Tensor):
        return value
    batch = input.shape[0]
    if not value.is_floating_point() or value.shape != (batch,):
        raise ValueError(
            f"Expected `{name}` to be a float or a floating point tensor of shape (N,) = ({batch},), but got "
            f"{value.dtype} of shape {tuple(value.shape)}."
        )
    check_device(value, input.device, name, "`input`")
    return value.detach()


def _ascent_step(
    model: nn.Module,
    x_adv: Tensor,
    lower: Tensor,
    upper: Tensor,
    target: Tensor,
    objective: ObjectiveName | ObjectiveFn,
    step_size: PerSample,
    student_temperature: float,
    loss_scale: float,
    model_dtype: torch.dtype | None = None,
    model_name: str = "model",
) -> Tensor:
    """One signed ascent step on the input, projected into ``[lower, upper]``; the next iterate (detached)."""
    x_adv = x_adv.detach().requires_grad_(True)
    model_input = x_adv if model_dtype is None else x_adv.to(model_dtype)
    loss = summed_objective(model(model_input), target, objective, student_temperature, model_name)
    if loss_scale != 1.0:
        loss = loss * loss_scale
    (grad,) = torch.autograd.grad(loss, x_adv)
    direction = torch.nan_to_num(grad, nan=0.0).sign_()
    # step * (+-1 or 0) is exact, so add(alpha=) (one pass) equals x_adv + step * direction.
    if isinstance(step_size, Tensor):
        moved = torch.addcmul(x_adv.detach(), direction, step_size)
    else:
        moved = torch.add(x_adv.detach(), direction, alpha=step_size)
    return torch.clamp(moved, lower, upper)


def _pgd_step(
    model: nn.Module,
    x_adv: Tensor,
    x: Tensor,
    target: Tensor,
    *,
    objective: ObjectiveName | ObjectiveFn,
    eps: PerSample,
    step_size: PerSample,
    clip_min: float,
    clip_max: float,
    student_temperature: float = 1.0,
    loss_scale: float = 1.0,
    model_dtype: torch.dtype | None = None,
) -> Tensor:
    """One ascent step from ``x_adv`` with the projection around ``x`` (the 0.1 public ``pgd_step``).

    In eager mode the settings are checked as a :class:`PGDConfig` checks them.
    """
    if not torch.compiler.is_compiling():
        check_objective(objective)
        checked_fields(
            {
                "eps": eps if not isinstance(eps, Tensor) else 0.0,
                "step_size": step_size if not isinstance(step_size, Tensor) else 1.0,
                "clip_min": clip_min,
                "clip_max": clip_max,
                "student_temperature": student_temperature,
                "loss_scale": loss_scale,
            }
        )
    lower, upper = projection_bounds(x, eps, clip_min, clip_max)
    return _ascent_step(
        model, x_adv, lower, upper, target, objective, step_size, student_temperature, loss_scale, model_dtype
    )


def _compiled_pgd_step(mode: str | None = None) -> Callable[..., Tensor]:
    """:func:`_pgd_step` compiled with ``fullgraph=True`` (the 0.1 public ``compiled_pgd_step``)."""
    return compiled(_pgd_step, mode)


def _first_iterate(
    x: Tensor, start: Tensor | None, config: PGDConfig, eps: PerSample, generator: torch.Generator | None
) -> Tensor:
    """The given ``start``, or the config's random start around ``x`` (not yet projected)."""
    if start is not None:
        if not isinstance(start, Tensor) or start.shape != x.shape:
            raise ValueError(f"Expected `start` to be a tensor of shape {tuple(x.shape)} like `input`.")
        return start.detach().to(x)
    if config.random_start is None:
        return x.clone()
    device = generator.device if generator is not None else x.device
    if config.random_start == "normal":
        noise = config.init_std * torch.randn(x.shape, generator=generator, device=device, dtype=torch.float32)
    else:
        noise = torch.rand(x.shape, generator=generator, device=device, dtype=torch.float32)
        noise = (2 * noise - 1) * (eps.to(device=device, dtype=torch.float32) if isinstance(eps, Tensor) else eps)
    return x + noise.to(x.device)


def _fp16_autocast_active(device_type: str) -> bool:
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16


def run_pgd(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    config: PGDConfig,
    objective: Objective,
    eps: PerSample,
    step_size: PerSample,
    *,
    generator: torch.Generator | None = None,
    start: Tensor | None = None,
    validated: bool = False,
) -> Tensor:
    """Internal: call :func:`_pgd` (after the caller's own checks) instead."""
    checking = values_checkable(config.validate_args) and not validated
    return _attack(model, input, target, config, objective, eps, step_size, generator, None, start, checking)
