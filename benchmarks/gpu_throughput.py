"""Throughput of the whole ABSLD training step on a GPU, and how far it is from the FLOP floor.

ResNet-18 student, WideResNet-34-10 teacher (the paper's CIFAR-10 pair), batch 128 of
generated CIFAR-shaped data, 10 attack steps. Configurations, timed in paired rounds:

- ``fp32``: float32 everywhere, TF32 off;
- ``tf32``: float32 tensors, TF32 matmuls and convolutions;
- ``bf16``: bf16 autocast (loss math in float32);
- ``bf16 + channels_last + compile``: also channels_last tensors, ``KLPGDAttack(compile=True)``
  and the student's train-mode forwards through ``torch.compile``;
- ``auto``: ``ABSLDStep(precision="auto")`` (bf16 + channels_last on GPUs with bf16 tensor
  cores), eager and with ``compile=True`` (student, teacher and attack step compiled).

For each: images/s, the projected hours of 300 CIFAR-10 epochs (50,000 images; training
steps only: no data loading, no evaluation), and the FLOP floor: the FLOPs of one step
counted with the formulas of ``torch.utils.flop_counter.FlopCounterMode`` divided by the measured rate of a
large bf16 matmul (the best the GPU does on this workload's dominant operation).

    python benchmarks/gpu_throughput.py --device cuda    # needs a GPU
    python benchmarks/gpu_throughput.py --count-flops    # the FLOP count alone, any device, seconds
    python benchmarks/gpu_throughput.py --quick          # CPU smoke run: tiny widths, no compile
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from _bench_models import cifar_resnet18, wide_resnet
from _bench_step import absld_step, auto_label, distiller_step
from _timing import (
    add_common_args,
    describe_environment,
    load_at_end,
    markdown_table,
    paired_rounds,
    setup,
    synchronizer,
)
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from torch_absld import ABSLDLoss, ABSLDStep, KLPGDAttack

CIFAR10_TRAIN = 50_000
EPOCHS = 300


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls and convolutions on or off, restored afterwards."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def matmul_rate(device: torch.device, size: int, repeats: int) -> float:
    """Measured bf16 matmul FLOP/s for ``size x size`` operands."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    sync = synchronizer(device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


class _FlopCount(TorchDispatchMode):
    """Adds up ``FlopCounterMode``'s per-operator FLOP formulas over every dispatched call.

    ``FlopCounterMode`` itself also tracks modules with backward hooks, which cannot follow a
    ``torch.autograd.grad`` call inside the step (the attack's input gradients); the formulas
    (``torch.utils.flop_counter.flop_registry``) are the same.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call (matmuls and convolutions, forward and backward)."""
    counter = _FlopCount()
    with counter:
        step()
    return int(counter.total)


def full_step_flops(device: torch.device, batch: int, steps: int, *, tiny: bool = False) -> str:
    """FLOPs of one full-size step, per image and per batch, split by where they are spent.

    ``tiny=True`` counts a width-4 ResNet-18 and a WideResNet-10-1 instead (a smoke run).
    """
    C, n = 10, 2
    student = cifar_resnet18(C, 4 if tiny else 64).to(device)
    teacher = (wide_resnet(10, 1, C) if tiny else wide_resnet(34, 10, C)).to(device).eval()
    x, y = torch.rand(n, 3, 32, 32, device=device), torch.arange(n, device=device) % C
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    step = absld_step(student, teacher, ABSLDLoss(C), KLPGDAttack(student, steps=steps), optimizer, device=device)
    total = count_flops(lambda: step(x, y)) / n
    with torch.no_grad():
        teacher_forward = count_flops(lambda: teacher(x)) / n
        student.eval()
        student_forward = count_flops(lambda: student(x)) / n
    rows = [
        [f"teacher forward ({'WideResNet-10-1' if tiny else 'WideResNet-34-10'})", f"{teacher_forward / 1e9:.2f}"],
        [f"student forward (ResNet-18{', width 4' if tiny else ''})", f"{student_forward / 1e9:.2f}"],
        [f"whole step ({steps} attack steps, 2 train forwards, backward)", f"{total / 1e9:.2f}"],
    ]
    return (
        f"{markdown_table(['FLOPs per image', 'GFLOP'], rows)}\n\n"
        f"Whole step at batch {batch}: {batch * total / 1e12:.3f} TFLOP "
        f"({100 * teacher_forward / total:.0f}% in the teacher's forward)."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="attack steps")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode of the compiled configurations")
    parser.add_argument("--allow-cpu", action="store_true", help="run the full-size models on a CPU (hours)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled configurations")
    parser.add_argument(
        "--compile-rows",
        choices=("all", "auto"),
        default="all",
        help="compiled configurations: all, or only auto + compile (one set of compilations)",
    )
    parser.add_argument(
        "--count-flops",
        action="store_true",
        help="only count the FLOPs of the full-size step (on 2 images, scaled to --batch: FLOPs are linear in it)",
    )
    return parser


def measure(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Time each configuration; return the rows of the table, the FLOPs, the floor and a caption."""
    full = not args.quick
    C = 10
    batch = args.batch if full else 4
    steps = args.steps if full else 1
    student0 = cifar_resnet18(C, 64 if full else 8).to(device)
    teacher = (wide_resnet(34, 10, C) if full else wide_resnet(10, 1, C)).to(device).eval()
    teacher_cl = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, C, (batch,), device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    compile_ = full and not args.no_compile

    def optimizer_for(student: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)

    def config(
        *, dtype: torch.dtype | None, channels_last: bool = False, compiled: bool = False, tf32_on: bool = False
    ) -> Callable[[], object]:
        student = copy.deepcopy(student0)
        if channels_last:
            student = student.to(memory_format=torch.channels_last)
        attack = KLPGDAttack(student, steps=steps, compile=compiled, compile_mode=args.compile_mode)
        forward: nn.Module | None = torch.compile(student, mode=args.compile_mode) if compiled else None
        step = absld_step(
            student,
            teacher_cl if channels_last else teacher,
            ABSLDLoss(C).to(device),
            attack,
            optimizer_for(student),
            device=device,
            autocast_dtype=dtype,
            student_forward=forward,
        )
        inputs = x_cl if channels_last else x

        def run() -> object:
            with tf32(tf32_on):
                return step(inputs, y)

        return run

    def auto(*, compiled: bool = False) -> Callable[[], object]:
        student = copy.deepcopy(student0)
        distiller = ABSLDStep(
            student,
            copy.deepcopy(teacher),
            C,
            steps=steps,
            precision="auto",
            compile=compiled,
            compile_mode=args.compile_mode,
        )
        step = distiller_step(distiller.to(device), optimizer_for(student))
        return lambda: step(x, y)

    chosen = auto_label(device)
    candidates: dict[str, Callable[[], object]] = {"fp32": config(dtype=None)}
    if device.type == "cuda":
        candidates["tf32"] = config(dtype=None, tf32_on=True)
    candidates["bf16"] = config(dtype=torch.bfloat16)
    candidates[f"auto ({chosen}), eager"] = auto()
    if compile_:
        if getattr(args, "compile_rows", "all") == "all":
            candidates["bf16 + channels_last + compile"] = config(
                dtype=torch.bfloat16, channels_last=True, compiled=True
            )
        candidates[f"auto ({chosen}) + compile=True"] = auto(compiled=True)
    else:
        candidates["bf16 + channels_last (no compile)"] = config(dtype=torch.bfloat16, channels_last=True)

    flops = count_flops(candidates["fp32"])
    rate = matmul_rate(device, 8192 if (full and device.type == "cuda") else 256, 20 if full else 3)
    floor = flops / rate
    times = paired_rounds(
        candidates,
        rounds=args.rounds,
        warmup=3 if compile_ else 1,
        sync=synchronizer(device),
        deadline=getattr(args, "deadline", None),
    )
    steps_per_epoch = math.ceil(CIFAR10_TRAIN / batch)
    rows: list[dict[str, Any]] = []
    for name, t in times.wall.items():
        seconds = statistics.median(t)
        rows.append(
            {
                "configuration": name,
                "ms_per_step": 1e3 * seconds,
                "images_per_s": batch / seconds,
                "hours_300_epochs": EPOCHS * steps_per_epoch * seconds / 3600,
                "time_over_floor": seconds / floor,
            }
        )
    caption = (
        f"ABSLD step: CIFAR ResNet-18 (width {64 if full else 8}) student, "
        f"{'WideResNet-34-10' if full else 'WideResNet-10-1'} teacher, batch {batch}, {steps} attack steps, "
        f"{times.rounds} paired rounds"
    )
    return {
        "caption": caption,
        "rows": rows,
        "gflop_per_step": flops / 1e9,
        "bf16_matmul_tflops": rate / 1e12,
        "floor_ms": 1e3 * floor,
        "floor_images_per_s": batch / floor,
    }


def throughput_table(result: dict[str, Any]) -> str:
    headers = ["configuration", "median ms / step", "images/s", f"hours for {EPOCHS} epochs", "time / floor"]
    rows = [
        [
            r["configuration"],
            f"{r['ms_per_step']:.1f}",
            f"{r['images_per_s']:.0f}",
            f"{r['hours_300_epochs']:.1f}",
            f"{r['time_over_floor']:.1f}x",
        ]
        for r in result["rows"]
    ]
    return markdown_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    device = setup(args)
    if args.count_flops:
        print(describe_environment(device, __file__, argv))
        print()
        print(full_step_flops(device, args.batch, args.steps))
        return
    if device.type == "cpu" and not (args.quick or args.allow_cpu):
        raise SystemExit("This benchmark is for a GPU: pass --device cuda, or --quick for a CPU smoke run.")
    print(describe_environment(device, __file__, argv))
    result = measure(args, device)
    print()
    print(result["caption"])
    print(
        f"FLOPs per step (FlopCounterMode formulas): {result['gflop_per_step']:.4g} GFLOP; "
        f"bf16 matmul rate: {result['bf16_matmul_tflops']:.3g} TFLOP/s; "
        f"floor: {result['floor_ms']:.2f} ms per step, {result['floor_images_per_s']:.0f} images/s"
    )
    print()
    print(throughput_table(result))
    print()
    print(load_at_end())


if __name__ == "__main__":
    main()
