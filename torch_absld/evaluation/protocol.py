"""The paper's evaluation protocol: attack names, their default settings and per-attack overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._internal.checks import check_choice, check_positive
from ..attack import PGDConfig
from ..attack.config import checked_fields

__all__ = ["ATTACKS", "attack_config", "default_attack_settings", "resolve_attack_settings"]

ATTACKS = ("clean", "fgsm", "pgd", "cw", "autoattack")
"""Attack names understood by :func:`torch_absld.evaluate_robustness`, in the paper's column order."""


def default_attack_settings(eps: float = 8 / 255) -> dict[str, dict[str, Any]]:
    """The paper's evaluation protocol for radius ``eps`` (white-box, L-inf).

    ``fgsm``: one step of ``eps`` on the cross-entropy from $x$; ``pgd``: 20 steps of 2/255 on the
    cross-entropy from a uniform start; ``cw``: 30 on the CW margin; ``autoattack``: standard.

    Example:
        >>> default_attack_settings()["pgd"]["steps"]
        20
    """
    eps = check_positive(eps, "eps", allow_zero=True)
    pgd = {"eps": eps, "step_size": 2 / 255, "steps": 20, "random_start": "uniform", "objective": "ce"}
    pgd["loss_scale"] = None
    return {
        "clean": {},
        "fgsm": {**pgd, "step_size": eps, "steps": 1, "random_start": None},
        "pgd": pgd,
        "cw": {**pgd, "steps": 30, "objective": "cw"},
        "autoattack": {"eps": eps, "version": "standard", "attacks": None, "batch_size": None},
    }


def resolve_attack_settings(
    attacks: str | Sequence[str], eps: float, overrides: Mapping[Any, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """The settings of each of ``attacks``: :func:`default_attack_settings` updated by ``overrides``, checked.

    FGSM / PGD / CW keys: ``eps``, ``step_size``, ``steps``, ``random_start`` (``"uniform"`` or
    ``None``), ``objective`` (``"ce"`` or ``"cw"``), ``loss_scale``; AutoAttack keys: ``eps``,
    ``version``, ``attacks`` (``version="custom"``), ``batch_size``.
    """
    names = (attacks,) if isinstance(attacks, str) else tuple(attacks)
    if not names:
        raise ValueError(f"Expected `attacks` to name at least one of {ATTACKS}, but got none.")
    for name in names:
        check_choice(name, "attacks", ATTACKS)
    if len(set(names)) != len(names):
        raise ValueError(f"Expected `attacks` without repeats, but got {names}.")
    defaults = default_attack_settings(eps)
    settings = {name: dict(defaults[name]) for name in names}
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(
            f"Expected `attack_overrides` to be a mapping like {{'pgd': {{'steps': 50}}}}, got {overrides!r}."
        )
    for name, changes in (overrides or {}).items():
        if name not in settings:
            raise ValueError(f"Expected `attack_overrides` keys among the attacks {names}, but got {name!r}.")
        if not isinstance(changes, Mapping):
            raise TypeError(f"Expected `attack_overrides[{name!r}]` to be a dict, but got {type(changes).__name__}.")
        for key, value in changes.items():
            if key not in defaults[name]:
                raise ValueError(
                    f"Expected `attack_overrides[{name!r}]` keys among {list(defaults[name])}, got {key!r}."
                )
            settings[name][key] = value
        if name == "fgsm" and "eps" in changes and "step_size" not in changes:
            settings[name]["step_size"] = settings[name]["eps"]
    for name, setting in settings.items():
        key_name = f"attack_overrides[{name!r}][{{!r}}]".format
        if name == "clean":
            continue
        setting["eps"] = check_positive(setting["eps"], key_name("eps"), allow_zero=True)
        if name != "autoattack":
            check_choice(setting["random_start"], key_name("random_start"), ("uniform", None))
            check_choice(setting["objective"], key_name("objective"), ("ce", "cw"))
            # The step size of a zero radius is never used (and FGSM's is the radius itself).
            unused = ("objective",) if setting["eps"] > 0 else ("objective", "step_size")
            checked_fields({key: value for key, value in setting.items() if key not in unused}, name=key_name)
    return settings


def attack_config(setting: Mapping[str, Any], clip_min: float, clip_max: float) -> PGDConfig | None:
    """The :class:`~torch_absld.PGDConfig` of one setting (no random start); ``None`` for a zero radius."""
    if not setting.get("eps"):
        return None
    steps = {key: setting[key] for key in ("step_size", "steps", "loss_scale") if key in setting}
    return PGDConfig(eps=setting["eps"], random_start=None, clip_min=clip_min, clip_max=clip_max, **steps)
