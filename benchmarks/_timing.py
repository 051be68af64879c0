"""Paired-round timing shared by the benchmark scripts.

Absolute times do not compare across runs on a shared machine, so every script measures its
candidates side by side in one process: each round runs every candidate once, the order
rotates every other round and runs backwards in the rounds between (no candidate always runs
first, after a cold cache, last, or after the same other candidate), and a ratio is the
median of the per-round ratios. The spread printed next to a ratio is its interquartile range
over the rounds.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _machine import describe_machine, load_average, machine_info

__all__ = [
    "Timings",
    "add_common_args",
    "command_line",
    "comparison_table",
    "describe_environment",
    "fmt_ratio",
    "load_at_end",
    "markdown_table",
    "paired_rounds",
    "quantile",
    "ratio_stats",
    "setup",
    "synchronizer",
]


def add_common_args(parser: argparse.ArgumentParser, *, rounds: int) -> argparse.ArgumentParser:
    """Add the flags every script takes: ``--quick``, ``--device``, ``--rounds``, ``--threads``."""
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 2 rounds: a smoke run, not a measurement")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"paired rounds (default {rounds})")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads on CPU (default 1: on a shared machine, more threads than idle cores "
        "make every parallel region wait for a descheduled thread and the timings meaningless)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Seed, set the thread count, check the device, and return it."""
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda was asked for, but no CUDA GPU is available.")
        torch.backends.cudnn.benchmark = True
    elif device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds = min(args.rounds, 2)
    return device


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run, as RESULTS.md quotes it."""
    argv = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{Path(script).name}", *(shlex.quote(a) for a in argv)])


def describe_environment(device: torch.device, script: str, argv: Sequence[str] | None = None) -> str:
    """The header of every table: command, device, CPU model and its bf16 / AMX capability, torch, date, load."""
    lines = [f"- command: `{command_line(script, argv)}`", *describe_machine(machine_info(device))]
    return "\n".join(lines)


def load_at_end() -> str:
    """The line every script prints last: the load while it ran matters as much as at its start."""
    return f"Load average at end (1/5/15 min): {load_average()}"


@dataclass
class Timings:
    """Seconds per round and candidate: wall clock, and this process's CPU time.

    On a shared CPU the CPU time is the steadier of the two (it does not count the time the
    process waits for a core), and with one torch thread it measures the same work; on a GPU
    only the wall clock means anything.
    """

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        """The number of timed rounds (fewer than asked when a deadline cut them short)."""
        return min((len(t) for t in self.wall.values()), default=0)


def paired_rounds(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    deadline: float | None = None,
) -> Timings:
    """Time every candidate once per round, rotating the order; return seconds per round.

    ``warmup`` untimed rounds run first (compilation, allocator growth, caches). Rounds ``2j``
    and ``2j + 1`` run the order rotated by ``j`` forwards, then backwards: over ``2k`` rounds each
    candidate runs in every position, and right after each of its two neighbours, equally often
    (what ran just before can shift a time by a few percent: allocator and cache state).
    With a ``deadline`` (a ``time.perf_counter()`` value), no round starts after it, except the
    first: a time budget shortens the measurement instead of losing it.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    sync()
    timings = Timings({name: [] for name in names}, {name: [] for name in names})
    for r in range(rounds):
        if r > 0 and deadline is not None and time.perf_counter() > deadline:
            break
        shift = r // 2 % len(names)
        order = names[shift:] + names[:shift]
        for name in order[::-1] if r % 2 else order:
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            candidates[name]()
            sync()
            timings.wall[name].append(time.perf_counter() - wall)
            timings.cpu[name].append(time.process_time() - cpu)
    return timings


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of ``values`` (``q`` in ``[0, 1]``)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def ratio_stats(numerator: Sequence[float], denominator: Sequence[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile of the per-round ratios ``numerator / denominator``."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return statistics.median(ratios), quantile(ratios, 0.25), quantile(ratios, 0.75)


def fmt_ratio(stats: tuple[float, float, float], digits: int = 3) -> str:
    """``median [q25, q75]``."""
    median, low, high = stats
    return f"{median:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def comparison_table(
    timings: Timings,
    reference: str,
    *,
    speedup: bool,
    first_column: str = "step",
    cpu_time: bool = True,
    digits: int = 3,
) -> str:
    """Median wall ms per candidate and its ratio to ``reference`` (wall clock and CPU time).

    ``speedup=True`` reports ``reference / candidate`` (higher is faster), otherwise
    ``candidate / reference`` (an overhead, lower is better).
    """
    kind = "speedup" if speedup else "ratio"
    headers = [first_column, "median ms", f"{kind} (wall), median [IQR]"]
    if cpu_time:
        headers.append(f"{kind} (CPU time), median [IQR]")
    rows: list[list[object]] = []
    for name, wall in timings.wall.items():
        row: list[object] = [name, f"{1e3 * statistics.median(wall):.1f}"]
        clocks = [timings.wall, timings.cpu] if cpu_time else [timings.wall]
        for clock in clocks:
            if name == reference:
                row.append("1 (reference)")
            elif speedup:
                row.append(fmt_ratio(ratio_stats(clock[reference], clock[name]), digits))
            else:
                row.append(fmt_ratio(ratio_stats(clock[name], clock[reference]), digits))
        rows.append(row)
    return markdown_table(headers, rows)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table, ready to paste into RESULTS.md."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def run_speedup_script(
    args: argparse.Namespace,
    script: str,
    argv: Sequence[str] | None,
    measure: Callable[[argparse.Namespace, torch.device], tuple[Timings, str]],
    reference: str,
    *,
    first_column: str = "step",
) -> None:
    """A speedup script's ``main``: the environment, the caption, the table of speedups over ``reference``, the load."""
    device = setup(args)
    print(describe_environment(device, script, argv))
    times, caption = measure(args, device)
    print()
    print(caption)
    print()
    print(comparison_table(times, reference, speedup=True, first_column=first_column, cpu_time=device.type == "cpu"))
    print()
    print(load_at_end())
