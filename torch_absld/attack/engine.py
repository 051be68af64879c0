"""One L-inf PGD engine: :func:`pgd`, :func:`kl_pgd` and the unchecked twin :func:`_pgd`."""

from __future__ import annotations

import contextlib
import numbers
from typing import Any

import torch
from torch import Tensor, nn

from .._internal import checks
from .._internal.compile import compiled, trace_input_gradients
from .._internal.modules import eval_mode, module_device, module_dtype, unwrap_model
from . import objectives
from .config import FP16_LOSS_SCALE, PGDConfig
from .projection import PerSample, per_sample_view, projection_bounds, round_into_ball

__all__ = ["kl_pgd", "pgd"]

_DEFAULT_CONFIG = PGDConfig()


def pgd(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    *,
    config: PGDConfig | None = None,
    objective: objectives.Objective = "auto",
    eps: PerSample | None = None,
    step_size: PerSample | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    start: Tensor | None = None,
    **settings: Any,
) -> Tensor:
    r"""L-inf projected gradient ascent on ``objective`` around ``input``.

    Each step: $x' \leftarrow \Pi_{[x-\epsilon, x+\epsilon] \cap [lo, hi]}\big(x' + s\,
    \mathrm{sign}(\nabla_{x'} L)\big)$, the model in ``config.model_mode`` (modes restored after),
    the gradient for the input only (also under ``no_grad`` / ``inference_mode``), the iterate in
    float32 (float64 for float64 inputs), a non-finite gradient entry as 0. ``validate_args``
    checks the values of ``input``, ``target`` and per-sample radii (one read).

    Args:
        model: the network under attack (a DDP / DataParallel wrapper is unwrapped).
        input: clean inputs in ``[clip_min, clip_max]`` (bf16 / fp16: attacked in float32, rounded back).
        target: soft labels $(N, C)$, integer labels $(N,)$, or what a callable objective takes.
        config: the settings; ``None`` is ``PGDConfig()`` (ABSLD's attack).
        objective: ``"kl"``, ``"ce"``, ``"cw"`` (margin), ``"auto"`` (``"kl"`` for floating point
            ``target``, else ``"ce"``) or ``objective(output, target)`` returning the summed loss.
        eps: radius, a float or per-sample $(N,)$, replacing ``config.eps``.
        step_size: a float or $(N,)$, replacing ``config.step_size``.
        generator: random generator of the start.
        seed: seed of a generator on the input's device instead.
        start: explicit first iterate like ``input``, instead of ``random_start``.
        **settings: other fields of ``config`` to change (``steps=20``, ...).

    Shape:
        - input: $(N, \dots)$; target: $(N, C)$ or $(N,)$; Output: like ``input``, exactly in the ball and range
    """
    config, eps, step_size = configured(config, eps, step_size, settings)
    checking = checks.values_checkable(config.validate_args)
    return _attack(model, input, target, config, objective, eps, step_size, generator, seed, start, checking)


def _pgd(model: nn.Module, input: Tensor, target: Tensor, **options: Any) -> Tensor:
    """:func:`pgd` (same keywords) without the value checks (no read from the device): the caller checked its inputs."""
    return pgd(model, input, target, **options, validate_args=False)


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
    **settings: Any,
) -> Tensor:
    r"""ABSLD's inner maximisation (Eq. 13): :func:`pgd` on $\mathrm{KL}(p \,\|\, \mathrm{softmax}(f(x') / \tau_s))$."""
    config, eps, step_size = configured(config, eps, step_size, settings)
    checking = checks.values_checkable(config.validate_args)
    return _attack(model, input, soft_labels, config, "kl", eps, step_size, generator, seed, None, checking)


def configured(
    config: PGDConfig | None, eps: PerSample | None, step_size: PerSample | None, settings: dict[str, Any]
) -> tuple[PGDConfig, PerSample, PerSample]:
    """The config with the scalar changes applied, and the radius and step of the call (per-sample tensors kept)."""
    if config is not None and not isinstance(config, PGDConfig):
        raise TypeError(f"Expected `config` to be a PGDConfig or None, but got {type(config).__name__}.")
    scalars = {"eps": eps, "step_size": step_size}
    changes = settings | {k: v for k, v in scalars.items() if v is not None and not isinstance(v, Tensor)}
    config = (config or _DEFAULT_CONFIG).replace(**changes) if changes else (config or _DEFAULT_CONFIG)
    radius = eps if isinstance(eps, Tensor) else config.eps
    return config, radius, step_size if isinstance(step_size, Tensor) else config.step_size


def _attack(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    config: PGDConfig,
    objective: objectives.Objective,
    eps: PerSample,
    step_size: PerSample,
    generator: torch.Generator | None,
    seed: int | None,
    start: Tensor | None,
    checking: bool,
    model_name: str = "model",
) -> Tensor:
    """The attack, settings resolved; ``checking``: run the value checks; ``model_name``: the model in errors."""
    with torch.inference_mode(False):  # no input gradient exists inside inference mode
        if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
            got = f"{input.dtype} of shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"Expected `input` to be a floating point tensor of shape (N, ...), but got {got}.")
        attacked = unwrap_model(model)
        checks.check_device(input, module_device(attacked), "input", f"`{model_name}`")
        resolved = objectives.resolve_objective(objective, target)
        target = objectives.check_target(target, resolved, input.shape[0], device=input.device)
        if isinstance(target, Tensor) and target.is_inference():
            target = target.clone()  # an inference tensor cannot be saved for backward
        eps, step_size = _per_sample(eps, "eps", input), _per_sample(step_size, "step_size", input)
        radii = (("eps", eps, True), ("step_size", step_size, False))
        if seed is not None:
            if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
                raise TypeError(f"Expected `seed` to be an int or None, but got {type(seed).__name__}.")
            generator = torch.Generator(device=input.device).manual_seed(int(seed))
        x = checks.at_least_float32(input.detach())
        x = x.clone() if x.is_inference() else x
        feed = module_dtype(attacked) or input.dtype  # a cast model gets the iterate in its own dtype
        model_dtype = feed if feed != x.dtype else None
        fp16 = torch.is_autocast_enabled(x.device.type) and torch.get_autocast_dtype(x.device.type) == torch.float16
        scale = config.loss_scale or (FP16_LOSS_SCALE if fp16 or model_dtype == torch.float16 else 1.0)
        ascent = compiled(_ascent_step, config.compile_mode) if config.compile else _ascent_step
        tracing = trace_input_gradients() if config.compile else contextlib.nullcontext()
        with eval_mode(attacked), torch.enable_grad(), tracing:  # modes restored on exit
            if checking:  # one read; labels against the class count of the model's output on one sample
                flags = [checks.input_flag(input, config.clip_min, config.clip_max)]
                flags += [_radius_flag(v, n, z) for n, v, z in radii if isinstance(v, Tensor) and v.numel()]
                objective_checks = getattr(resolved, "_value_checks", None)  # CountingObjective, EarlyStopping
                if resolved == "kl":
                    flags.append(checks.probability_flag(target, "target"))
                elif input.shape[0] and (resolved in ("ce", "cw") or objective_checks is not None):
                    with torch.no_grad():
                        output = attacked(x[:1] if model_dtype is None else x[:1].to(model_dtype))
                    if objective_checks is not None:
                        flags += objective_checks(output, target)
                    elif not callable(resolved):
                        objectives.check_output_width(output, target[:1], resolved, model_name)
                        flags.append(objectives.target_flag(target, resolved, output.shape[1]))
                checks.raise_first(flags)
            if input.shape[0] == 0:
                return input.detach().clone()
            attacked.train(config.model_mode == "train")  # every submodule; eval_mode restores them
            lower, upper = projection_bounds(x, eps, config.clip_min, config.clip_max)
            x_adv = _first_iterate(x, start, config, per_sample_view(eps, x), generator)
            if config.project_start:
                x_adv = torch.clamp(x_adv, lower, upper)
            step, temperature = per_sample_view(step_size, x), config.student_temperature
            for _ in range(config.steps):
                x_adv = ascent(
                    attacked, x_adv, lower, upper, target, resolved, step, temperature, scale, model_dtype, model_name
                )
        return round_into_ball(x_adv, input, eps, config.clip_min, config.clip_max)


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


def _ascent_step(
    model: nn.Module,
    x_adv: Tensor,
    lower: Tensor,
    upper: Tensor,
    target: Tensor,
    objective: objectives.ObjectiveName | objectives.ObjectiveFn,
    step_size: PerSample,
    student_temperature: float,
    loss_scale: float,
    model_dtype: torch.dtype | None = None,
    model_name: str = "model",
) -> Tensor:
    """One signed ascent step on the input, projected into ``[lower, upper]`` (detached)."""
    x_adv = x_adv.detach().requires_grad_(True)
    model_input = x_adv if model_dtype is None else x_adv.to(model_dtype)
    loss = objectives.summed_objective(model(model_input), target, objective, student_temperature, model_name)
    if loss_scale != 1.0:
        loss = loss * loss_scale
    (grad,) = torch.autograd.grad(loss, x_adv)
    direction = torch.nan_to_num(grad, nan=0.0).sign_()
    if isinstance(step_size, Tensor):
        moved = torch.addcmul(x_adv.detach(), direction, step_size)
    else:
        moved = torch.add(x_adv.detach(), direction, alpha=step_size)
    return torch.clamp(moved, lower, upper)


def _radius_flag(value: Tensor, name: str, allow_zero: bool) -> checks.ValueCheck:
    flag = (~torch.isfinite(value) | (value < 0 if allow_zero else value <= 0)).any()

    def raise_error() -> None:
        raise ValueError(f"Expected every `{name}` finite and {'>= 0' if allow_zero else '> 0'}, got {value.tolist()}.")

    return flag, raise_error


def _per_sample(value: PerSample, name: str, input: Tensor) -> PerSample:
    """A scalar as it is; a per-sample tensor checked (shape, dtype, device), detached."""
    if not isinstance(value, Tensor):
        return value
    batch = input.shape[0]
    if not value.is_floating_point() or value.shape != (batch,):
        raise ValueError(
            f"Expected `{name}` to be a float or a floating point tensor of shape (N,) = ({batch},), but got "
            f"{value.dtype} of shape {tuple(value.shape)}."
        )
    checks.check_device(value, input.device, name, "`input`")
    return value.detach()
