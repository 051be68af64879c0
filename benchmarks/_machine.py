"""What a benchmark ran on: the processor, its bf16 / AMX capability, torch, threads and load.

Ratios measured on one machine do not carry to another (bf16 autocast is 2x faster than float32
on a CPU with AVX512-BF16 and 10x slower on one without), so every script prints this header,
and RESULTS.md quotes no ratio without it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch

from torch_absld import bf16_support, fastest_settings

__all__ = ["cpu_model", "describe_machine", "load_average", "machine_info"]


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or ``n/a``."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _cpu_flags() -> dict[str, bool]:
    capabilities: Callable[[], Any] | None = getattr(torch.cpu, "get_capabilities", None)
    caps = dict(capabilities()) if capabilities is not None else {}
    onednn = torch.backends.mkldnn.is_available()
    return {
        "AVX-512": bool(caps.get("avx512_f", False)),
        "AVX512-BF16": bool(caps.get("avx512_bf16", False)),
        "AMX-BF16": bool(caps.get("amx_bf16", False)),
        "oneDNN bf16 kernels": bool(onednn and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }


def bf16_matmul_ratio(device: torch.device, size: int = 256, repeats: int = 5) -> float:
    """Time of a bf16 ``size x size`` matmul over the float32 one (below 1: bf16 is faster)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        a @ b
        runs = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            a @ b
            sync()
            runs.append(time.perf_counter() - start)
        times[dtype] = statistics.median(runs)
    return times[torch.bfloat16] / times[torch.float32]


def machine_info(device: torch.device) -> dict[str, Any]:
    """Everything the header says, as a dictionary (for JSON)."""
    bf16 = bf16_support(device)
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": _cpu_flags(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"),
        "bf16_native": bf16.native,
        "bf16_reason": bf16.reason,
        "auto": fastest_settings(device).describe(),
        "bf16_over_fp32_matmul_time": round(bf16_matmul_ratio(device), 3),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": load_average(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info["gpu"] = properties.name
        info["gpu_capability"] = f"{properties.major}.{properties.minor}"
        info["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
    return info


def describe_machine(info: dict[str, Any]) -> list[str]:
    """The header's lines about the machine (markdown list items)."""
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in info["cpu_flags"].items())
    isa = f"; ONEDNN_MAX_CPU_ISA={info['onednn_max_cpu_isa']}" if info["onednn_max_cpu_isa"] else ""
    lines = []
    if "gpu" in info:
        lines.append(
            f"- device: {info['device']} ({info['gpu']}, compute capability {info['gpu_capability']}, "
            f"{info['gpu_memory_gib']} GiB)"
        )
    else:
        lines.append(f"- device: {info['device']}")
    lines += [
        f"- CPU: {info['cpu']}; {info['logical_cores']} logical cores, torch threads {info['torch_threads']}; "
        f"ATen vector ISA {info['aten_cpu_capability']}{isa}",
        f"- CPU bf16 capability: {flags}",
        f"- bf16 on this device: {'native' if info['bf16_native'] else 'NOT native'} ({info['bf16_reason']}); "
        f"bf16 / fp32 matmul time {info['bf16_over_fp32_matmul_time']}",
        f"- precision='auto' picks: {info['auto']}",
        f"- torch {info['torch']}, Python {info['python']}",
        f"- date: {info['date']}",
        f"- load average at start (1/5/15 min): {info['load_average_at_start']}",
    ]
    return lines
