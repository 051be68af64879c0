"""Where the time of a compiled training step goes, against the same step run eagerly.

The step is ``vs_authors.py``'s (small CNN student, twice-as-wide teacher, batch 128, 10
attack steps): the attack step compiled with ``KLPGDAttack(compile=True)`` and the student's
two train-mode forwards with ``torch.compile``, or both eager. For each, under
``torch.profiler``:

- each phase of the step (teacher, attack, student forwards, loss, backward, optimizer), in ms;
- the kind of work (oneDNN convolutions forward and backward, layout copies, matmuls,
  inductor's fused kernels, eager batch norm / ReLU, the rest), from the operators' self time;
- TorchDynamo's counters over the profiled steps: graph breaks and graphs compiled again
  (recompiles), which must both be zero once warm.

Then, without the profiler, paired rounds of the step and of the attack alone, eager against
compiled: the ratios that the profile explains.

    python benchmarks/profile_compile.py                  # float32, contiguous tensors
    python benchmarks/profile_compile.py --channels-last  # float32, channels_last model and inputs
    python benchmarks/profile_compile.py --quick          # smoke run (tiny shapes; still compiles)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence

import torch
from _bench_models import small_cnn
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
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, record_function

from torch_absld import ABSLDLoss, KLPGDAttack

PHASES = ("teacher", "attack", "student forwards", "loss", "backward", "optimizer")
KINDS = {
    "convolution forward (oneDNN)": ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution"),
    "convolution backward (oneDNN)": ("aten::convolution_backward", "aten::mkldnn_convolution_backward"),
    "layout and dtype copies": ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to"),
    "matmuls (linear layers)": ("aten::addmm", "aten::mm"),
    "batch norm, ReLU and their backward (eager)": (
        "aten::native_batch_norm",
        "aten::native_batch_norm_backward",
        "aten::_native_batch_norm_legit_no_training",
        "aten::batch_norm",
        "aten::_batch_norm_impl_index",
        "aten::threshold_backward",
        "aten::relu",
        "aten::relu_",
        "aten::clamp_min",
        "aten::clamp_min_",
    ),
}
COMPILED_PREFIXES = ("## Call CompiledFxGraph", "Torch-Compiled Region", "CompiledFunction", "TorchDynamo")


def kind_of(name: str) -> str:
    if name.startswith(COMPILED_PREFIXES):
        return "inductor's fused kernels (compiled graphs)"
    for kind, names in KINDS.items():
        if name in names:
            return kind
    return "other (attack arithmetic, loss, optimizer, dispatch)"


def profiled_step(
    student: nn.Module,
    teacher: nn.Module,
    attack: KLPGDAttack,
    forward: Callable[[Tensor], Tensor],
    loss_fn: ABSLDLoss,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager[object]],
) -> Callable[[], None]:
    """``_bench_step.absld_step`` with a profiler label around each phase."""

    def step() -> None:
        student.train()
        with record_function("phase: teacher"), torch.no_grad(), autocast():
            teacher_logits = teacher(x)
        with autocast():
            with record_function("phase: attack"):
                x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
            with record_function("phase: student forwards"):
                adv_logits, clean_logits = forward(x_adv), forward(x)
            with record_function("phase: loss"):
                loss = loss_fn(adv_logits, clean_logits, teacher_logits, y)
        with record_function("phase: backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("phase: optimizer"):
            optimizer.step()

    return step


@contextlib.contextmanager
def dynamo_counters() -> Iterator[dict[str, int]]:
    """Graph breaks and graphs compiled inside the block."""
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    breaks_before = sum(counters["graph_break"].values())
    out: dict[str, int] = {}
    yield out
    out["graphs compiled"] = counters["stats"]["unique_graphs"] - before
    out["graph breaks"] = sum(counters["graph_break"].values()) - breaks_before


def profile_steps(step: Callable[[], None], steps: int) -> tuple[dict[str, float], dict[str, float]]:
    """Milliseconds per step by phase and by kind of work."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    phases: dict[str, float] = {}
    kinds: dict[str, float] = collections.defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("phase: "):
            phases[event.key.removeprefix("phase: ")] = event.cpu_time_total / 1e3 / steps
        elif event.key.startswith("ProfilerStep"):
            continue
        else:
            kinds[kind_of(event.key)] += event.self_cpu_time_total / 1e3 / steps
    return phases, dict(kinds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=32, help="student width (teacher: twice)")
    parser.add_argument("--steps", type=int, default=10, help="attack steps")
    parser.add_argument("--profiled-steps", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true", help="channels_last model and inputs")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="autocast dtype")
    args = parser.parse_args(argv)
    device = setup(args)
    print(describe_environment(device, __file__, argv))
    if args.quick:
        args.batch, args.width, args.steps, args.profiled_steps = 8, 4, 2, 1
    C = 10
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    base = small_cnn(C, args.width).to(device, memory_format=memory_format)
    teacher = small_cnn(C, 2 * args.width).to(device, memory_format=memory_format).eval()
    x = torch.rand(args.batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, C, (args.batch,), device=device)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else None

    def autocast() -> contextlib.AbstractContextManager[object]:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def variant(compiled: bool) -> tuple[Callable[[], None], KLPGDAttack]:
        student = copy.deepcopy(base)
        attack = KLPGDAttack(student, steps=args.steps, compile=compiled)
        forward = torch.compile(student) if compiled else student
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        loss_fn = ABSLDLoss(C).to(device)
        return profiled_step(student, teacher, attack, forward, loss_fn, optimizer, x, y, autocast), attack

    steps = {}
    attacks = {}
    profiles = {}
    counts = {}
    soft = torch.softmax(torch.randn(args.batch, C, device=device), dim=1)
    for name, compiled in (("eager", False), ("compiled", True)):
        step, attack = variant(compiled)
        with dynamo_counters() as warm:
            for _ in range(2):  # compile, then one warm step
                step()
        with dynamo_counters() as steady:
            profiles[name] = profile_steps(step, args.profiled_steps)
            for _ in range(2):
                with autocast():
                    attack(x, soft)
        counts[name] = {"warm-up": warm, "profiled": steady}
        steps[name] = step
        attacks[name] = attack

    layout = "channels_last" if args.channels_last else "contiguous (NCHW)"
    print()
    print(
        f"Profile of one ABSLD step ({args.dtype}, {layout}), small CNN width {args.width}, batch {args.batch}, "
        f"{args.steps} attack steps; ms per step from torch.profiler (averaged over {args.profiled_steps} steps; "
        "the profiler adds its own overhead)"
    )
    print()
    rows = []
    for phase in PHASES:
        eager, compiled = profiles["eager"][0].get(phase, 0.0), profiles["compiled"][0].get(phase, 0.0)
        rows.append([phase, f"{eager:.1f}", f"{compiled:.1f}", f"{eager / compiled:.2f}" if compiled else "n/a"])
    print(markdown_table(["phase", "eager ms", "compiled ms", "eager / compiled"], rows))
    print()
    kinds = sorted(set(profiles["eager"][1]) | set(profiles["compiled"][1]))
    total = {name: sum(profiles[name][1].values()) for name in profiles}
    rows = []
    for kind in kinds:
        eager, compiled = profiles["eager"][1].get(kind, 0.0), profiles["compiled"][1].get(kind, 0.0)
        rows.append(
            [
                kind,
                f"{eager:.1f} ({100 * eager / total['eager']:.0f}%)",
                f"{compiled:.1f} ({100 * compiled / total['compiled']:.0f}%)",
            ]
        )
    rows.append(["total (operators' self time)", f"{total['eager']:.1f}", f"{total['compiled']:.1f}"])
    print(markdown_table(["kind of work (self CPU time)", "eager ms (share)", "compiled ms (share)"], rows))
    print()
    rows = [
        [f"{name}, {when}", str(c["graphs compiled"]), str(c["graph breaks"])]
        for name, when_counts in counts.items()
        for when, c in when_counts.items()
    ]
    print(markdown_table(["TorchDynamo", "graphs compiled", "graph breaks"], rows))

    sync = synchronizer(device)
    times = paired_rounds({"eager step": steps["eager"], "compiled step": steps["compiled"]}, rounds=args.rounds)
    print()
    print(f"Paired rounds without the profiler ({args.rounds}); speedup = eager time / compiled time")
    print()
    print(comparison_table(times, "eager step", speedup=True, cpu_time=device.type == "cpu"))

    def attack_only(name: str) -> Callable[[], object]:
        def run() -> object:
            with autocast():
                return attacks[name](x, soft)

        return run

    times = paired_rounds(
        {"eager attack": attack_only("eager"), "compiled attack": attack_only("compiled")},
        rounds=args.rounds,
        sync=sync,
    )
    print()
    print(
        comparison_table(
            times, "eager attack", speedup=True, first_column="attack alone", cpu_time=device.type == "cpu"
        )
    )
    print()
    print(load_at_end())


if __name__ == "__main__":
    main()
