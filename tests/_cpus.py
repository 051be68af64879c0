"""CPUs and GPUs as torch's capability checks describe them, for tests of the precision choice."""

from __future__ import annotations

import platform

import pytest
import torch


def mock_cpu(
    monkeypatch: pytest.MonkeyPatch,
    *,
    onednn: bool = True,
    onednn_bf16: bool = True,
    avx512_bf16: bool = False,
    amx_bf16: bool = False,
    machine: str = "x86_64",
) -> None:
    """A CPU as torch's capability checks describe it."""
    capabilities = {"avx512_f": onednn_bf16, "avx512_bf16": avx512_bf16, "amx_tile": amx_bf16, "amx_bf16": amx_bf16}
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: onednn)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)


def emulating_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AVX-512 CPU without AVX512-BF16 or AMX: oneDNN emulates bf16."""
    mock_cpu(monkeypatch, onednn_bf16=True, avx512_bf16=False)  # an AVX-512 Xeon of 2017-2021


def native_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU with AVX512-BF16: bf16 is native."""
    mock_cpu(monkeypatch, onednn_bf16=True, avx512_bf16=True)  # e.g. AMD Zen 4, Intel Cooper Lake


def mock_gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    """A CUDA GPU of compute ``capability`` (not ROCm)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
