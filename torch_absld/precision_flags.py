"""A command line's ``--amp`` and ``--channels-last`` flags, and their resolution for a device."""

from __future__ import annotations

import argparse

import torch

from ._internal.checks import check_choice
from .precision import Precision, fastest_settings

__all__ = ["AMP_FLAGS", "add_precision_flags", "settings_from_flags"]

AMP_FLAGS: dict[str, Precision] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""The ``--amp`` values of a command line (besides ``"auto"``) and the precision each means."""


def add_precision_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--amp {auto,fp32,bf16,fp16}`` and ``--channels-last [{auto,on,off}]`` (bare: ``"on"``), both ``"auto"``.

    Example:
        >>> import argparse
        >>> args = add_precision_flags(argparse.ArgumentParser()).parse_args(["--channels-last"])
        >>> args.amp, args.channels_last
        ('auto', 'on')
    """
    parser.add_argument(
        "--amp",
        choices=["auto", *AMP_FLAGS],
        default="auto",
        help="'auto' (default): bf16 where the device runs it natively, else fp16 on GPUs with tensor cores, else fp32",
    )
    parser.add_argument(
        "--channels-last",
        nargs="?",
        const="on",
        choices=["auto", "on", "off"],
        default="auto",
        help="channels_last tensors: 'auto' (default: where they pay), 'on' (also the bare flag) or 'off'",
    )
    return parser


def settings_from_flags(
    amp: str, channels_last: str | bool, device: torch.device | str, *, allow_fp16: bool = True
) -> tuple[Precision, bool, str]:
    """``(precision, channels_last, reason)`` for a command line's ``--amp`` and ``--channels-last`` on ``device``.

    ``"auto"`` takes :func:`fastest_settings` (fp16 only with ``allow_fp16``); the reason of any
    other value says what ``"auto"`` would have picked. ``channels_last`` may also be a bool.

    Example:
        >>> settings_from_flags("fp32", "off", "cpu")[:2]
        ('float32', False)
    """
    check_choice(amp, "amp", ("auto", *AMP_FLAGS))
    if not isinstance(channels_last, bool):
        check_choice(channels_last, "channels_last", ("auto", "on", "off"))
    settings = fastest_settings(device, allow_fp16=allow_fp16)
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(settings.dtype, "fp32")
    layout = settings.channels_last if channels_last == "auto" else channels_last in (True, "on")
    if amp == "auto":
        return AMP_FLAGS[name], layout, settings.reason
    return AMP_FLAGS[amp], layout, f"--amp {amp} (auto would pick {name}: {settings.reason})"
