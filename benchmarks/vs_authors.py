"""torch-absld's training step against a step written like the authors' script.

Same student, teacher, data, batch, 10 attack steps. The baseline (``authors_loop.py``) runs in
float32, eagerly, with its per-sample Python loops. torch-absld runs its default path (float32,
eager), each speed setting alone (channels_last, bf16 autocast, compiled attack and student),
their combination (the "fast path" of earlier releases), and what a user gets from
``ABSLDStep(precision="auto")``: bf16 only where the hardware runs it natively, else
float32, with channels_last inputs where that pays (``torch_absld.fastest_settings``), eager
and with ``compile=True``.

    python benchmarks/vs_authors.py             # CPU, the numbers in RESULTS.md
    python benchmarks/vs_authors.py --quick     # smoke run (no compile)
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence

import torch
from _bench_models import cifar_resnet18, small_cnn, wide_resnet
from _bench_step import absld_step, auto_label, distiller_step
from _timing import (
    Timings,
    add_common_args,
    paired_rounds,
    run_speedup_script,
    synchronizer,
)
from authors_loop import AuthorsLoop
from torch import nn

from torch_absld import ABSLDLoss, ABSLDStep, KLPGDAttack

REFERENCE = "authors' loop (fp32, eager)"
DEFAULT = "torch-absld default (fp32, eager)"


def build(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, nn.Module, int]:
    C = args.num_classes
    if args.model == "resnet18":  # the paper's CIFAR-10 pair: ResNet-18 student, WideResNet-34-10 teacher
        student = cifar_resnet18(C, 8 if args.quick else 64)
        teacher = wide_resnet(10, 1, C) if args.quick else wide_resnet(34, 10, C)
        return student.to(device), teacher.to(device).eval(), C
    width = 8 if args.quick else args.width
    return small_cnn(C, width).to(device), small_cnn(C, 2 * width).to(device).eval(), C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--model", choices=("cnn", "resnet18"), default="cnn")
    parser.add_argument("--width", type=int, default=32, help="small CNN student width (teacher: twice)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variants (implied by --quick)")
    parser.add_argument(
        "--compile-rows",
        choices=("all", "auto"),
        default="all",
        help="compiled variants: all, or only auto + compile (one set of compilations)",
    )
    parser.add_argument(
        "--fast-dtype",
        choices=("bfloat16", "float16", "float32"),
        default=None,
        help="autocast dtype of the forced-precision rows (default: bfloat16; float32 turns autocast off)",
    )
    return parser


def measure(args: argparse.Namespace, device: torch.device) -> tuple[Timings, str]:
    """Time every candidate in paired rounds; return the timings and the table's caption."""
    compile_ = not (args.no_compile or args.quick)
    fast_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None, None: torch.bfloat16}[
        args.fast_dtype
    ]
    student0, teacher, C = build(args, device)
    teacher_cl = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
    steps = 2 if args.quick else 10
    batch = 16 if args.quick else args.batch
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, C, (batch,), device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def optimizer_for(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)

    def authors() -> Callable[[], object]:
        student = copy.deepcopy(student0)
        loop = AuthorsLoop(student, teacher, optimizer_for(student), C, steps=steps)
        return lambda: loop.step(x, y)

    def library(
        *, channels_last: bool = False, dtype: torch.dtype | None = None, compiled: bool = False
    ) -> Callable[[], object]:
        student = copy.deepcopy(student0)
        if channels_last:
            student = student.to(memory_format=torch.channels_last)
        attack = KLPGDAttack(student, steps=steps, compile=compiled)
        forward = torch.compile(student) if compiled else None
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
        return lambda: step(inputs, y)

    def auto(*, compiled: bool = False) -> Callable[[], object]:
        # What the examples do: plain inputs, the distiller picks the precision and the layout.
        student = copy.deepcopy(student0)
        distiller = ABSLDStep(student, copy.deepcopy(teacher), C, steps=steps, precision="auto", compile=compiled)
        step = distiller_step(distiller.to(device), optimizer_for(student))
        return lambda: step(x, y)

    label = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[fast_dtype]
    chosen = auto_label(device)
    candidates: dict[str, Callable[[], object]] = {
        REFERENCE: authors(),
        DEFAULT: library(),
        "torch-absld, channels_last": library(channels_last=True),
        f"torch-absld, {label} autocast": library(dtype=fast_dtype),
        f"torch-absld, {label} autocast + channels_last": library(channels_last=True, dtype=fast_dtype),
        f"torch-absld auto ({chosen}), eager": auto(),
    }
    if compile_:
        if args.compile_rows == "all":
            candidates["torch-absld, compiled attack + student (fp32)"] = library(compiled=True)
            candidates[f"torch-absld fast path: compiled + {label} + channels_last"] = library(
                channels_last=True, dtype=fast_dtype, compiled=True
            )
        candidates[f"torch-absld auto ({chosen}) + compile=True"] = auto(compiled=True)
    times = paired_rounds(
        candidates,
        rounds=args.rounds,
        warmup=2 if compile_ else 1,
        sync=synchronizer(device),
        deadline=getattr(args, "deadline", None),
    )
    model = "small CNN student (teacher twice as wide)"
    if args.model == "resnet18":
        model = "CIFAR ResNet-18 student, WideResNet-34-10 teacher" if not args.quick else "tiny ResNet/WRN pair"
    caption = (
        f"One ABSLD training step, {model}, batch {batch}, C = {C}, {steps} attack steps, "
        f"{times.rounds} paired rounds; speedup = baseline time / candidate time"
    )
    return times, caption


def main(argv: Sequence[str] | None = None) -> None:
    run_speedup_script(build_parser().parse_args(argv), __file__, argv, measure, REFERENCE)


if __name__ == "__main__":
    main()
