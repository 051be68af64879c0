"""AutoAttack through the authors' ``pyautoattack`` package (the ``eval`` extra)."""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .._internal import checks
from .._internal.modules import as_model_input, frozen_model, module_device, unwrap_model

__all__ = ["auto_attack"]

AutoAttackVersion = Literal["standard", "plus", "rand", "custom"]
_ATTACKS_OF_VERSION = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}


def auto_attack(
    model: nn.Module,
    input: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    eps: float = 8 / 255,
    version: AutoAttackVersion = "standard",
    attacks: Sequence[str] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    validate_args: bool = True,
) -> Tensor:
    r"""L-inf AutoAttack (Croce & Hein, 2020) of ``model`` on one batch, through ``pyautoattack``.

    ``version="standard"`` runs APGD-CE, APGD-T, FAB-T and Square on the samples still classified
    correctly (or ``"plus"``, ``"rand"``, ``"custom"`` with ``attacks`` e.g. ``["apgd-ce", "square"]``);
    APGD-T and FAB-T target $\min(9, C - 1)$ classes (DLR losses: $C \ge 4$). ``seed`` seeds the
    restarts; global random state, model mode and ``requires_grad`` are restored. The attacks run on
    ``device`` (``None``: the input's) in batches of ``batch_size`` (``None``: all), inputs in ``[0, 1]``
    (``clip_min`` = 0, ``clip_max`` = 1). ``validate_args`` checks input and target values (one read).

    Shape:
        - input: $(N, C_{in}, H, W)$ (Square perturbs images); target: $(N,)$ in $[0, C)$; Output: like ``input``
    """
    eps = checks.check_positive(eps, "eps", allow_zero=True)
    checks.check_choice(version, "version", (*_ATTACKS_OF_VERSION, "custom"))
    bounds = (checks.check_finite_number(clip_min, "clip_min"), checks.check_finite_number(clip_max, "clip_max"))
    if bounds != (0.0, 1.0):
        raise ValueError(
            f"Expected `clip_min` = 0 and `clip_max` = 1 for AutoAttack, which clamps to [0, 1], but got "
            f"[{clip_min}, {clip_max}]. Scale the inputs to [0, 1] and put the normalisation inside the model."
        )
    num_classes = checks.check_num_classes(num_classes, minimum=2)
    batch_size = None if batch_size is None else checks.check_integer(batch_size, "batch_size", minimum=1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"Expected `seed` to be an int, but got {type(seed).__name__}.")
    seed = int(seed)
    run = _attack_list(version, attacks)
    if {"apgd-t", "fab-t", "apgd-dlr"} & set(run) and num_classes < 4:
        raise ValueError(
            f"Expected `num_classes` >= 4 for AutoAttack's {'/'.join(run)} (the DLR losses use the 3 or 4 "
            f"largest logits), but got {num_classes}. Use version='custom' with attacks=['apgd-ce', 'square']."
        )
    if not isinstance(input, Tensor) or not input.is_floating_point():
        got = input.dtype if isinstance(input, Tensor) else type(input).__name__
        raise TypeError(f"Expected `input` to be a floating point tensor, but got {got}.")
    if "square" in run and input.dim() != 4:
        raise ValueError(
            f"Expected `input` images of shape (N, C, H, W) for AutoAttack's Square attack, but got "
            f"{tuple(input.shape)}. Reshape the data to images and flatten inside the model."
        )
    attacked = unwrap_model(model)
    device = torch.device(device) if device is not None else input.device
    checks.check_device(input, None, "input", "")
    target = checks.check_integer_labels(target, num_classes, batch_size=input.shape[0], check_values=False)
    if input.shape[0] == 0:
        return input.detach().clone()
    if checks.values_checkable(checks.check_bool(validate_args, "validate_args")):
        checks.raise_first([checks.label_range_flag(target, num_classes), checks.input_flag(input, 0.0, 1.0)])
    probe = input[:1].to(device)
    checks.check_device(probe, module_device(attacked), "input", "`model` (or `device`)")
    with torch.no_grad(), frozen_model(attacked), torch.inference_mode(False):
        check_logits_of(attacked(as_model_input(attacked, probe)), 1, num_classes)
    if eps == 0.0:
        return input.detach().clone()
    try:
        module = importlib.import_module("pyautoattack")
    except ImportError as error:
        raise ImportError('AutoAttack needs `pyautoattack`: pip install "torch-absld[eval]".') from error
    custom = {"attacks": list(run)} if version == "custom" else {}
    adversary = module.AutoAttack(attacked, device=device, eps=eps, norm="Linf", seed=seed, version=version, **custom)
    adversary.verbose = False
    adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = min(9, num_classes - 1)
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    # The attacks need gradients: run them outside torch.inference_mode(), on ordinary copies.
    with frozen_model(attacked), torch.random.fork_rng(devices=cuda), torch.inference_mode(False):
        x_adv, _ = adversary.run_standard_evaluation(
            input.detach().to(device).clone(), target.to(device).clone(), batch_size=batch_size or input.shape[0]
        )
    return x_adv.to(device=input.device, dtype=input.dtype)


def check_logits_of(output: Any, batch_size: int, num_classes: int) -> None:
    """Raise unless the model's ``output`` is logits ``(batch_size, num_classes)``."""
    if not isinstance(output, Tensor) or tuple(output.shape) != (batch_size, num_classes):
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"Expected `model` to return logits of shape (N, num_classes) = ({batch_size}, {num_classes}), "
            f"but got {got}. Check `num_classes` and that the model returns plain logits."
        )


def _attack_list(version: str, attacks: Sequence[str] | None) -> tuple[str, ...]:
    known = _ATTACKS_OF_VERSION["plus"]  # every attack
    if version != "custom":
        if attacks is not None:
            raise ValueError(f"Expected `attacks` only with version='custom', but got version={version!r}.")
        return _ATTACKS_OF_VERSION[version]
    if attacks is None or isinstance(attacks, str) or not attacks:
        raise ValueError(f"Expected `attacks` to be a non-empty list from {known} with version='custom'.")
    for name in attacks:
        checks.check_choice(name, "attacks", known)
    return tuple(attacks)
