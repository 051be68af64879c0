"""The command-line flags --amp / --channels-last: parsing, and their resolution for a device."""

from __future__ import annotations

import argparse

import pytest
from _cpus import emulating_cpu, native_cpu

from torch_absld import fastest_settings
from torch_absld.precision_flags import add_precision_flags, settings_from_flags


def test_settings_from_flags_names_a_bad_flag():
    with pytest.raises(ValueError, match=r"Expected `amp` to be one of 'auto', 'fp32', 'bf16', 'fp16', but got 'half'"):
        settings_from_flags("half", "auto", "cpu")
    expected = r"Expected `channels_last` to be one of 'auto', 'on', 'off', but got 'yes'"
    with pytest.raises(ValueError, match=expected):
        settings_from_flags("auto", "yes", "cpu")


def test_settings_from_flags_auto_follows_fastest_settings(monkeypatch):
    emulating_cpu(monkeypatch)
    assert settings_from_flags("auto", "auto", "cpu")[:2] == ("float32", True)
    assert settings_from_flags("bf16", False, "cpu")[:2] == ("bfloat16", False)
    native_cpu(monkeypatch)
    precision, channels_last, reason = settings_from_flags("auto", "off", "cpu")
    assert (precision, channels_last) == ("bfloat16", False)
    assert reason == fastest_settings("cpu").reason


@pytest.mark.parametrize(
    ("argv", "amp", "channels_last"),
    [
        ([], "auto", "auto"),
        (["--channels-last"], "auto", "on"),
        (["--amp", "bf16", "--channels-last", "off"], "bf16", "off"),
        (["--amp", "fp16"], "fp16", "auto"),
    ],
)
def test_precision_flags_parse_what_settings_from_flags_takes(argv, amp, channels_last):
    args = add_precision_flags(argparse.ArgumentParser()).parse_args(argv)
    assert (args.amp, args.channels_last) == (amp, channels_last)
    expected = {"auto": fastest_settings("cpu").channels_last, "on": True, "off": False}[channels_last]
    assert settings_from_flags(args.amp, args.channels_last, "cpu")[1] is expected


def test_precision_flags_reject_an_unknown_value():
    parser = add_precision_flags(argparse.ArgumentParser(exit_on_error=False))
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'half'"):
        parser.parse_args(["--amp", "half"])
