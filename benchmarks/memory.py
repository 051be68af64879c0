"""Peak memory of one ABSLD training step over the same step with frozen temperatures (RSLAD).

How the peak is measured:

- **CPU, torch allocations** (``torch.profiler`` with ``profile_memory=True``): every
  allocation and free of the torch CPU allocator during one step is recorded with the
  allocator's running total; the peak is the largest total reached during the step, counted
  from the bytes live when the step starts (the model, optimizer state and data are live
  before and after). ``tracemalloc`` cannot see these allocations, and torch 2.14 keeps no
  CPU allocator statistics of its own.
- **CPU, resident set** (Linux with glibc): in a fresh process per variant, after two warm-up
  steps, ``malloc_trim(0)`` hands malloc's cached free memory back to the system, the kernel's
  high-water mark is reset (``/proc/self/clear_refs``), one step runs, and the peak is
  ``VmHWM`` minus the resident set before the step. Coarser (pages, malloc's own caching
  during the step), but it sees every allocation, torch's or not.
- **GPU**: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
  bytes allocated before the step.

    python benchmarks/memory.py                # CPU, the numbers in RESULTS.md
    python benchmarks/memory.py --quick        # smoke run (one process, no subprocesses)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from _bench_models import cifar_resnet18, small_cnn
from _bench_step import absld_step
from _timing import add_common_args, describe_environment, load_at_end, markdown_table, setup

from torch_absld import ABSLDLoss, KLPGDAttack

VARIANTS = {
    "RSLAD: frozen temperatures, no risk recording": {"adapt": "none", "record_risk": False},
    "RSLAD: adapt='none' (records class risk)": {"adapt": "none"},
    "ABSLD (default)": {},
}
REFERENCE = "RSLAD: frozen temperatures, no risk recording"
MiB = 2.0**20


_SENTINEL_BYTES = 987_653  # an allocation size that marks the boundary between the two profiled calls


def profiler_peak(fn: Callable[[], object]) -> int:
    """Largest number of torch CPU bytes live during ``fn()`` beyond those live at its start.

    ``fn`` runs twice under the profiler and the second call is measured: the profiler only
    knows the size of blocks allocated while it runs, so a block that the second call frees
    was allocated by the first call and its free is accounted for.
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
        del_me = torch.empty(_SENTINEL_BYTES, dtype=torch.uint8)
        del del_me
        fn()
    stack = list(prof.profiler.kineto_results.experimental_event_tree())  # type: ignore[union-attr]
    events: list[tuple[int, int, int]] = []
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        fields = event.extra_fields
        if event.tag == _EventType.Allocation and fields.device.type == "cpu":
            events.append((event.start_time_ns, fields.alloc_size, fields.total_allocated))
    events.sort()
    boundary = max(i for i, (_, size, _) in enumerate(events) if size == -_SENTINEL_BYTES)
    start = events[boundary][2]
    return max((total for _, _, total in events[boundary:]), default=start) - start


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field} not in /proc/self/status")
    return int(match.group(1))


def rss_peak(fn: Callable[[], object]) -> int | None:
    """Peak resident-set growth during ``fn()`` in bytes (Linux), or ``None`` where unavailable."""
    try:
        gc.collect()
        # Give memory that malloc keeps cached from earlier steps back to the system, so the
        # resident set before the step is what is live, and the step's growth shows.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        fn()
        return 1024 * (_status_kib("VmHWM") - before)
    except (OSError, RuntimeError, AttributeError):
        return None


def cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def make_step(args: argparse.Namespace, device: torch.device, variant: str) -> Callable[[], object]:
    torch.manual_seed(args.seed)
    C = args.num_classes
    if args.model == "resnet18":
        width = 8 if args.quick else 64
        student, teacher = cifar_resnet18(C, width), cifar_resnet18(C, width)
    else:
        width = 8 if args.quick else args.width
        student, teacher = small_cnn(C, width), small_cnn(C, 2 * width)
    student, teacher = student.to(device), teacher.to(device).eval()
    batch = 16 if args.quick else args.batch
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, C, (batch,), device=device)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    loss_fn = ABSLDLoss(C, **VARIANTS[variant]).to(device)  # type: ignore[arg-type]
    attack = KLPGDAttack(student, steps=2 if args.quick else 10)
    step = absld_step(student, teacher, loss_fn, attack, optimizer, device=device)
    return lambda: step(x, y)


def measure(args: argparse.Namespace, device: torch.device, variant: str) -> dict[str, int | None]:
    fn = make_step(args, device, variant)
    fn()
    fn()
    if device.type == "cuda":
        return {"cuda": cuda_peak(fn, device)}
    # The resident set only means something in a fresh process (not in --quick's single one).
    rss = None if args.quick else rss_peak(fn)
    return {"profiler": profiler_peak(fn), "rss": rss}


def _child_argv(args: argparse.Namespace, variant: str) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--model",
        args.model,
        "--batch",
        str(args.batch),
        "--width",
        str(args.width),
        "--num-classes",
        str(args.num_classes),
        "--seed",
        str(args.seed),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--model", choices=("cnn", "resnet18"), default="cnn")
    parser.add_argument("--width", type=int, default=32, help="small CNN student width (teacher: twice)")
    parser.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = setup(args)
    if args.quick:
        args.rounds = 1
    if args.child is not None:
        print(json.dumps(measure(args, device, args.child)))
        return
    print(describe_environment(device, __file__, argv))
    names = list(VARIANTS)
    results: dict[str, list[dict[str, int | None]]] = {name: [] for name in names}
    for r in range(args.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if args.quick:
                results[name].append(measure(args, device, name))
            else:
                out = subprocess.run(_child_argv(args, name), check=True, capture_output=True, text=True).stdout
                results[name].append(json.loads(out.strip().splitlines()[-1]))
    keys = ["cuda"] if device.type == "cuda" else ["profiler", "rss"]
    label = {
        "cuda": "cuda.max_memory_allocated",
        "profiler": "torch CPU allocator (profiler)",
        "rss": "resident set (VmHWM)",
    }
    rows = []
    for name in names:
        row: list[object] = [name]
        for key in keys:
            values = [v[key] for v in results[name] if v[key] is not None]
            ref = [v[key] for v in results[REFERENCE] if v[key] is not None]
            if not values or not ref or statistics.median(ref) <= 0:
                row += ["n/a", "n/a"]
                continue
            peak, ref_peak = statistics.median(values), statistics.median(ref)
            ratio = "1 (reference)" if name == REFERENCE else f"{peak / ref_peak:.4f}"
            row += [f"{peak / MiB:.2f}", ratio]
        rows.append(row)
    headers = ["step"]
    for key in keys:
        headers += [f"peak MiB, {label[key]}", "ratio to RSLAD"]
    model = "CIFAR ResNet-18" if args.model == "resnet18" else "small CNN"
    where = "one process" if args.quick else "a fresh process per variant and round"
    print()
    print(
        f"Peak memory of one training step above what is live before it, {model}, batch "
        f"{16 if args.quick else args.batch}, C = {args.num_classes}; median of {args.rounds} rounds, {where}"
    )
    print()
    print(markdown_table(headers, rows))
    print()
    print(load_at_end())


if __name__ == "__main__":
    main()
