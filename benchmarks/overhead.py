"""What ABSLD costs over RSLAD: the full training step, then the bookkeeping alone.

Part 1 times one full training step (teacher forward, KL-PGD, two student forwards, loss,
backward, SGD) with ABSLD's adapting temperatures against the same step with frozen
temperatures (RSLAD), same model, same data, in paired rounds, and bounds the ratio directly
by timing ABSLD's only extra work (recording the class risks) alone. Part 2 times the bookkeeping
calls of one ``ClassTemperatureController`` per batch in microseconds, for several class
counts and batch sizes, with and without value checks.

    python benchmarks/overhead.py               # CPU, the numbers in RESULTS.md
    python benchmarks/overhead.py --quick       # smoke run
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable, Sequence

import torch
from _bench_models import small_cnn
from _bench_step import absld_step
from _timing import (
    add_common_args,
    comparison_table,
    describe_environment,
    load_at_end,
    markdown_table,
    paired_rounds,
    setup,
    synchronizer,
)

from torch_absld import ABSLDLoss, ClassTemperatureController, KLPGDAttack


def step_overhead(args: argparse.Namespace, device: torch.device) -> str:
    C = args.num_classes
    batch = 32 if args.quick else args.batch
    width = 8 if args.quick else args.width
    teacher = small_cnn(C, 2 * width).to(device).eval()
    base = small_cnn(C, width).to(device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, C, (batch,), device=device)
    steps = 2 if args.quick else 10

    def make(validate: bool = True, epoch_end: bool = False, **loss_kwargs: object) -> Callable[[], object]:
        student = copy.deepcopy(base)
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        loss_fn = ABSLDLoss(C, validate_args=validate, **loss_kwargs).to(device)  # type: ignore[arg-type]
        attack = KLPGDAttack(student, steps=steps, validate_args=validate)
        step = absld_step(student, teacher, loss_fn, attack, optimizer, device=device, epoch_end=epoch_end)
        return lambda: step(x, y)

    candidates = {
        "RSLAD: frozen temperatures, no risk recording": make(adapt="none", record_risk=False),
        "RSLAD: adapt='none' (records class risk)": make(adapt="none"),
        "ABSLD (default)": make(),
        "ABSLD, Eq. 11 step() after every batch": make(epoch_end=True),
        "ABSLD, validate_args=False": make(validate=False),
    }
    reference = "RSLAD: frozen temperatures, no risk recording"
    times = paired_rounds(candidates, rounds=args.rounds, warmup=1, sync=synchronizer(device))
    table = comparison_table(times, reference, speedup=False, cpu_time=device.type == "cpu", digits=4)
    title = (
        f"Full training step, small CNN (width {width}) student, width-{2 * width} teacher, "
        f"batch {batch}, C = {C}, {steps} attack steps, {args.rounds} paired rounds"
    )
    return f"{title}\n\n{table}\n\n{_direct_estimate(args, device, batch, times.wall[reference])}"


def _direct_estimate(args: argparse.Namespace, device: torch.device, batch: int, step_times: list[float]) -> str:
    """ABSLD's only extra work per batch, timed alone, as a fraction of the RSLAD step.

    The paired ratio above carries the machine's noise (a few percent on a shared CPU); this
    bound does not: it is what recording the class risks costs per batch (two per-sample
    cross-entropies and two index_add_), plus the end-of-epoch update spread over an epoch
    of CIFAR (391 batches of 128).
    """
    C, inner = args.num_classes, 5 if args.quick else args.inner
    loss_fn = ABSLDLoss(C).to(device)
    s_adv, s_clean = torch.randn(batch, C, device=device), torch.randn(batch, C, device=device)
    y = torch.randint(0, C, (batch,), device=device)
    loss_fn.record(s_adv, s_clean, y)

    def epoch_end() -> object:
        loss_fn.adv.accumulator[1].fill_(1.0)
        loss_fn.clean.accumulator[1].fill_(1.0)
        return loss_fn.step()

    calls = {
        "record": lambda: [loss_fn.record(s_adv, s_clean, y) for _ in range(inner)],
        "epoch_end": lambda: [epoch_end() for _ in range(inner)],
    }
    times = paired_rounds(calls, rounds=args.rounds, warmup=1, sync=synchronizer(device))
    record = statistics.median(times.wall["record"]) / inner
    per_epoch = statistics.median(times.wall["epoch_end"]) / inner
    step = statistics.median(step_times)
    extra = record + per_epoch / 391
    return (
        f"Direct estimate: recording the class risks costs {1e6 * record:.1f} us per batch and the "
        f"end-of-epoch update {1e6 * per_epoch:.1f} us per epoch; over a {1e3 * step:.0f} ms step "
        f"that bounds the ABSLD / RSLAD ratio at {1 + extra / step:.5f}."
    )


def _bookkeeping_candidates(
    num_classes: int, batch: int, device: torch.device, validate: bool
) -> dict[str, Callable[[], object]]:
    ctrl = ClassTemperatureController(num_classes, validate_args=validate).to(device)
    logits = torch.randn(batch, num_classes, device=device)
    target = torch.randint(0, num_classes, (batch,), device=device)
    risk = torch.rand(batch, device=device)
    ctrl.update(logits, target)
    filled = ctrl.accumulator.clone()

    def step() -> object:
        ctrl.accumulator.copy_(filled)
        return ctrl.step()

    return {
        "ctrl(target)": lambda: ctrl(target),
        "update": lambda: ctrl.update(logits, target),
        "accumulate": lambda: ctrl.accumulate(risk, target),
        "step": step,
    }


def bookkeeping(args: argparse.Namespace, device: torch.device) -> str:
    classes: Sequence[int] = (10, 100) if args.quick else (10, 100, 1000)
    batches: Sequence[int] = (128, 256) if args.quick else (128, 512, 1024, 4096)
    inner = 5 if args.quick else args.inner
    sync = synchronizer(device)
    rows = []
    for C in classes:
        for N in batches:
            cells: dict[str, dict[bool, float]] = {}
            for validate in (True, False):
                calls = _bookkeeping_candidates(C, N, device, validate)

                def repeat(fn: Callable[[], object]) -> Callable[[], object]:
                    return lambda: [fn() for _ in range(inner)]

                times = paired_rounds(
                    {name: repeat(fn) for name, fn in calls.items()}, rounds=args.rounds, warmup=1, sync=sync
                )
                for name, t in times.cpu.items():
                    cells.setdefault(name, {})[validate] = 1e6 * statistics.median(t) / inner
            row: list[object] = [C, N]
            for name in ("ctrl(target)", "update", "accumulate"):
                row.append(f"{cells[name][True]:.1f} / {cells[name][False]:.1f}")
            row.append(f"{1e3 * cells['update'][False] / N:.1f}")
            row.append(f"{cells['step'][True]:.1f}")
            rows.append(row)
    title = (
        "Bookkeeping per batch, microseconds (median of "
        f"{args.rounds} paired rounds of {inner} calls), `validate_args=True / False`"
    )
    headers = [
        "C",
        "batch",
        "ctrl(target)",
        "update(logits, target)",
        "accumulate(risk, target)",
        "update ns/sample (no checks)",
        "step() (once per epoch)",
    ]
    return f"{title}\n\n{markdown_table(headers, rows)}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--width", type=int, default=32, help="student width (teacher: twice)")
    parser.add_argument("--inner", type=int, default=200, help="calls per timed bookkeeping measurement")
    parser.add_argument("--part", choices=("all", "step", "bookkeeping"), default="all")
    args = parser.parse_args(argv)
    device = setup(args)
    print(describe_environment(device, __file__, argv))
    if args.part in ("all", "step"):
        print()
        print(step_overhead(args, device))
    if args.part in ("all", "bookkeeping"):
        print()
        print(bookkeeping(args, device))
    print()
    print(load_at_end())


if __name__ == "__main__":
    main()
