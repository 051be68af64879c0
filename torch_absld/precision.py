"""The fastest correct precision (bf16 only where the hardware has it) and memory layout for a device."""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import torch
from torch import Tensor

__all__ = [
    "PRECISIONS",
    "BF16Support",
    "DeviceSettings",
    "Precision",
    "bf16_support",
    "fastest_settings",
    "precision_scope",
    "warn_if_emulated",
]

Precision: TypeAlias = Literal["auto", "float32", "bfloat16", "float16"]
"""A training step's ``precision=``: ``"auto"`` (:func:`fastest_settings`) or an autocast dtype."""
PRECISIONS: tuple[Precision, ...] = ("auto", "float32", "bfloat16", "float16")

# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) below AVX512_CORE, and below AVX512_CORE_BF16.
_ISA_WITHOUT_AVX512 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"})
_ISA_WITHOUT_BF16 = _ISA_WITHOUT_AVX512 | {"AVX512_CORE", "AVX512_CORE_VNNI"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class BF16Support:
    """Whether a device runs bf16 arithmetic in hardware (``native``), and the capability that decided it."""

    native: bool
    reason: str


@dataclass(frozen=True)
class DeviceSettings:
    """What :func:`fastest_settings` chose: autocast ``dtype`` (float32: none), ``memory_format``, ``reason``.

    Example:
        >>> with fastest_settings("cpu").autocast():
        ...     y = torch.nn.Linear(4, 2)(torch.rand(3, 4))
    """

    device: torch.device
    dtype: torch.dtype
    memory_format: torch.memory_format
    reason: str

    @property
    def needs_grad_scaler(self) -> bool:
        """``True`` for float16, whose small range needs a ``torch.amp.GradScaler``."""
        return self.dtype == torch.float16

    @property
    def channels_last(self) -> bool:
        """Whether 4-D inputs (and convolutional models) should be ``channels_last``."""
        return self.memory_format == torch.channels_last

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """``torch.autocast`` for :attr:`dtype` on this device (disabled for float32)."""
        return _autocast(self.device, self.dtype)

    def describe(self) -> str:
        """One line for a log: dtype, layout and reason."""
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{str(self.dtype).removeprefix('torch.')} + {layout} on {self.device}: {self.reason}"


def bf16_support(device: torch.device | str | None = None) -> BF16Support:
    """Whether ``device`` (``None``: the CPU) runs bf16 natively, from torch's capability checks.

    CUDA: compute capability >= 8.0 or ROCm. x86 CPU: oneDNN bf16 kernels and AVX512-BF16 or
    AMX-BF16, not hidden by ``ONEDNN_MAX_CPU_ISA``. Arm CPU: oneDNN's check. Others: not native.
    """
    device = _device("cpu" if device is None else device)
    if device.type == "cuda":
        return _cuda_bf16(device)
    if device.type == "cpu":
        return BF16Support(*_cpu_bf16())
    return BF16Support(False, f"no bf16 capability check for {device.type} devices")


def fastest_settings(device: torch.device | str | None = None, *, allow_fp16: bool = False) -> DeviceSettings:
    """The fastest dtype and memory format for a training step on ``device`` (``None``: CUDA if available).

    bf16 where native (:func:`bf16_support`), else float32; float16 with ``allow_fp16`` on CUDA
    7.x (it needs a ``GradScaler``). ``channels_last`` on GPUs in bf16 / fp16 and on x86 CPUs
    where oneDNN runs AVX-512 kernels; contiguous elsewhere.
    """
    device = _device(("cuda" if torch.cuda.is_available() else "cpu") if device is None else device)
    bf16 = bf16_support(device)
    if device.type == "cuda":
        if bf16.native:
            return DeviceSettings(device, torch.bfloat16, torch.channels_last, bf16.reason)
        if allow_fp16 and _cuda_capability(device)[0] >= 7:
            reason = f"{bf16.reason}; fp16 tensor cores (scale the loss with a GradScaler)"
            return DeviceSettings(device, torch.float16, torch.channels_last, reason)
        return DeviceSettings(device, torch.float32, torch.contiguous_format, bf16.reason)
    dtype = torch.bfloat16 if bf16.native else torch.float32
    if device.type != "cpu":
        return DeviceSettings(device, dtype, torch.contiguous_format, bf16.reason)
    avx512, why = _cpu_avx512()
    layout = torch.channels_last if avx512 else torch.contiguous_format
    return DeviceSettings(device, dtype, layout, f"{bf16.reason}; {why}")


def warn_if_emulated(device: torch.device | str, dtype: torch.dtype, *, stacklevel: int = 1) -> bool:
    """Warn (``UserWarning``, at the caller for ``stacklevel=1``) and return True if ``device`` emulates ``dtype``."""
    device = _device(device)
    if dtype not in (torch.bfloat16, torch.float16):
        return False
    native, reason = astuple(bf16_support(device)) if dtype == torch.bfloat16 else _fp16_support(device)
    if native:
        return False
    message = f"autocast on {device} is not native here ({reason}): it is usually several times slower than float32."
    hint = "Use precision='auto' (torch_absld.fastest_settings) or float32."
    warnings.warn(f"{str(dtype).removeprefix('torch.')} {message} {hint}", stacklevel=stacklevel + 1)
    return True


def precision_scope(
    precision: Precision | None, input: Tensor, *, stacklevel: int = 1
) -> tuple[Tensor, contextlib.AbstractContextManager[object]]:
    """``(input, context)`` of a training step's ``precision=``: the input to use and its autocast context.

    ``None``: the caller's autocast; ``"auto"``: :func:`fastest_settings` (a 4-D input in its memory
    format); else that dtype (bf16 / fp16 warned if emulated). No change on devices without autocast.
    """
    device = input.device
    if not torch.amp.is_autocast_available(device.type):
        return input, contextlib.nullcontext()  # e.g. meta tensors: the step's own checks name the device
    tracing = torch.compiler.is_compiling()
    if precision is None:
        if not tracing and torch.is_autocast_enabled(device.type):
            warn_if_emulated(device, torch.get_autocast_dtype(device.type), stacklevel=stacklevel + 1)
        return input, contextlib.nullcontext()
    if precision == "auto":
        settings = fastest_settings(device)
        if settings.channels_last and input.dim() == 4:
            input = input.contiguous(memory_format=torch.channels_last)
        return input, settings.autocast()
    dtype = _DTYPES[precision]
    if not tracing:
        warn_if_emulated(device, dtype, stacklevel=stacklevel + 1)
    return input, _autocast(device, dtype)


_F = TypeVar("_F", bound=Callable[..., Any])


def _constant_under_compile(fn: _F) -> _F:
    """``torch.compiler.assume_constant_result``'s mark, set without importing ``torch._dynamo``."""
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


def _device(device: object) -> torch.device:
    """``device`` as a ``torch.device``; an int is refused (it is not read as a CUDA index)."""
    if not isinstance(device, (torch.device, str)):
        raise TypeError(
            f"Expected `device` to be a torch.device or a string ('cpu', 'cuda', 'cuda:0'), but got "
            f"{type(device).__name__} {device!r}."
            + (f" Pass 'cuda:{device}' for CUDA device {device}." if type(device) is int else "")
        )
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"Expected `device` to name a device ('cpu', 'cuda', 'cuda:0'), but got {device!r}.") from None


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[object]:
    if dtype != torch.float32:
        return torch.autocast(device.type, dtype=dtype)
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()  # a device without autocast runs float32 anyway


def _cuda_capability(device: torch.device) -> tuple[int, int]:
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def _cuda_bf16(device: torch.device) -> BF16Support:
    if torch.version.hip:
        return BF16Support(True, "ROCm GPU: bf16 matrix cores")
    major, minor = _cuda_capability(device)
    why = ": bf16 tensor cores" if major >= 8 else " < 8.0: no bf16 tensor cores"
    return BF16Support(major >= 8, f"CUDA compute capability {major}.{minor}{why}")


@_constant_under_compile
def _has_onednn() -> bool:
    return bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]


@_constant_under_compile
def _cpu_bf16() -> tuple[bool, str]:
    """Native bf16 on this CPU, and why (a constant for ``torch.compile``)."""
    if not _has_onednn():
        return False, "torch is built without oneDNN: bf16 runs in reference kernels"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, "oneDNN has no bf16 kernels for this CPU (no AVX-512): bf16 runs in reference kernels"
    if platform.machine().lower() in ("aarch64", "arm64"):
        return True, "Arm CPU with the BF16 extension (oneDNN bf16 kernels)"
    limit = _isa_limit()
    if limit in _ISA_WITHOUT_BF16:
        return False, f"ONEDNN_MAX_CPU_ISA={limit} hides the CPU's bf16 instructions: oneDNN emulates bf16"
    capabilities = torch.cpu.get_capabilities()
    if capabilities.get("amx_bf16"):
        return True, "CPU with AMX-BF16 (oneDNN bf16 kernels)"
    if capabilities.get("avx512_bf16"):
        return True, "CPU with AVX512-BF16 (oneDNN bf16 kernels)"
    return False, "AVX-512 CPU without AVX512-BF16 or AMX: oneDNN emulates bf16"


def _isa_limit() -> str:
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()


@_constant_under_compile
def _cpu_avx512() -> tuple[bool, str]:
    """Whether oneDNN runs AVX-512 kernels on this CPU (its bf16 check is an AVX-512 check on x86), and why."""
    why = "contiguous: channels_last convolutions pay (and are safe) only in oneDNN's x86 AVX-512 kernels"
    if not _has_onednn() or platform.machine().lower() in ("aarch64", "arm64"):
        return False, why
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, f"{why}, and this CPU has no AVX-512"
    if _isa_limit() in _ISA_WITHOUT_AVX512:
        return False, f"{why}, hidden by ONEDNN_MAX_CPU_ISA={_isa_limit()}"
    return True, "oneDNN's AVX-512 convolutions prefer channels_last"


@_constant_under_compile
def _cpu_fp16() -> tuple[bool, str]:
    if _has_onednn() and torch.ops.mkldnn._is_mkldnn_fp16_supported():
        return True, "CPU with AVX512-FP16 / AMX-FP16 (oneDNN fp16 kernels)"
    return False, "CPU without AVX512-FP16 or AMX-FP16: oneDNN emulates fp16 or has no fp16 kernels"


def _fp16_support(device: torch.device) -> tuple[bool, str]:
    if device.type == "cuda":
        if torch.version.hip:
            return True, "ROCm GPU: fp16 matrix cores"
        major, minor = _cuda_capability(device)
        native = major >= 7
        return native, f"CUDA compute capability {major}.{minor}" + ("" if native else " < 7.0: no fp16 tensor cores")
    if device.type == "cpu":
        return _cpu_fp16()
    return False, f"no fp16 capability check for {device.type} devices"
