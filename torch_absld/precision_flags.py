"""A command line's ``--amp`` and ``--channels-last`` flags, and their resolution for a device.

- :func:`add_precision_flags`: the two flags on an ``argparse`` parser, both ``"auto"`` by default;
- :func:`settings_from_flags`: the flags resolved for a device into a training step's
  ``precision=``, whether to use ``channels_last`` tensors, and the reason.

The examples use both; ``"auto"`` is :func:`~torch_absld.precision.fastest_settings`.
"""

from __future__ import annotations

import argparse

import torch

from .precision import Precision, fastest_settings

__all__ = ["AMP_FLAGS", "add_precision_flags", "settings_from_flags"]

AMP_FLAGS: dict[str, Precision] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""The ``--amp`` values of a command line (besides ``"auto"``) and the precision each means."""


def add_precision_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--amp {auto,fp32,bf16,fp16}`` and ``--channels-last [{auto,on,off}]`` to ``parser``.

    Both default to ``"auto"``; a bare ``--channels-last`` means ``"on"``. Resolve them with
    :func:`settings_from_flags` (``settings_from_flags(args.amp, args.channels_last, device)``).

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
    """A command line's ``--amp`` and ``--channels-last`` resolved for ``device``, as the examples use them.

    ``"auto"`` takes :func:`fastest_settings`; any other value is what the user asked for, and
    the reason then says what ``"auto"`` would have picked.

    Args:
        amp: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        channels_last: ``"auto"``, ``"on"`` or ``"off"`` (or a bool).
        device: the device the training runs on.
        allow_fp16: let ``"auto"`` pick fp16 on GPUs without bf16 (the loop scales fp16 losses).

    Returns:
        ``(precision, channels_last, reason)``: a training step's ``precision=``, whether to use
        ``channels_last`` tensors, and why, in one line.

    Example:
        >>> settings_from_flags("fp32", "off", "cpu")[:2]
        ('float32', False)
    """
    if amp != "auto" and amp not in AMP_FLAGS:
        raise ValueError(f"Expected `amp` to be one of 'auto', {', '.join(map(repr, AMP_FLAGS))}, but got {amp!r}.")
    if not isinstance(channels_last, bool) and channels_last not in ("auto", "on", "off"):
        raise ValueError(f"Expected `channels_last` to be 'auto', 'on', 'off' or a bool, but got {channels_last!r}.")
    settings = fastest_settings(device, allow_fp16=allow_fp16)
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(settings.dtype, "fp32")
    chosen = name if amp == "auto" else amp
    if isinstance(channels_last, bool):
        layout = channels_last
    else:
        layout = settings.channels_last if channels_last == "auto" else channels_last == "on"
    reason = settings.reason if amp == "auto" else f"--amp {amp} (auto would pick {name}: {settings.reason})"
    return AMP_FLAGS[chosen], layout, reason
