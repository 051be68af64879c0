"""Every GPU check of torch-absld in one command: one markdown table (and JSON) at a given path.

    python benchmarks/gpu_suite.py --out gpu_suite.md                      # one H100 / H200: under 8 minutes
    python benchmarks/gpu_suite.py --device cpu --quick --out /tmp/s.md    # smoke run (the test suite runs it)

The checks, in this order (``--checks`` picks some):

- ``cuda-tests``: ``pytest -m cuda`` in a subprocess (tests/test_cuda.py: bf16 and fp16 +
  GradScaler steps, precision="auto", compiled attack and step, state dicts across devices);
- ``amp``: fp16 + GradScaler and bf16 training steps of the paper's pair (CIFAR ResNet-18
  student, WideResNet-34-10 teacher, batch 128, 10 attack steps): dtypes, finite losses, the
  attack inside the eps ball, ms per step;
- ``throughput``: images/s of fp32, tf32, bf16 and auto (eager), the projected hours of the
  paper's 300-epoch CIFAR-10 recipe, and the time over the FLOP floor;
- ``compile``: ``ABSLDStep(precision="auto", compile=True)`` against the eager distiller:
  same first loss, no graph break, no recompilation once warm, speedup of the step and of the
  attack alone, and the compiled step's images/s and 300-epoch hours (its graphs are reused by
  the ``auto + compile`` row of ``vs-authors``);
- ``vs-authors`` / ``vs-torchattacks``: the ratios of ``vs_authors.py`` and
  ``vs_torchattacks.py`` on the ResNet-18 pair (eager ratios first: a compilation that does not
  finish does not lose them);
- ``flops``: the FLOPs of one full-size step, where they are spent.

Each check runs in its own try block with a share of ``--budget-s`` (what one leaves unused
goes to the next): past 80% of its share a check starts no new timing round, at 115% (plus a
few seconds) it is stopped. A failure or a timeout is reported and the suite goes on. The report is rewritten
after every check, so a suite that is killed still leaves what it measured. The exit status
is 1 when a check failed or timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import vs_authors
import vs_torchattacks
from _bench_models import cifar_resnet18, small_cnn, wide_resnet
from _bench_step import auto_label, distiller_step
from _machine import describe_machine, machine_info
from _timing import (
    Timings,
    add_common_args,
    command_line,
    comparison_table,
    load_at_end,
    markdown_table,
    paired_rounds,
    ratio_stats,
    setup,
    synchronizer,
)
from gpu_throughput import CIFAR10_TRAIN, EPOCHS, full_step_flops, throughput_table
from gpu_throughput import build_parser as throughput_parser
from gpu_throughput import measure as measure_throughput
from torch import nn

from torch_absld import ABSLDStep
from torch_absld.precision import precision_scope

ROOT = Path(__file__).resolve().parents[1]


class CheckTimeoutError(Exception):
    """A check ran past its hard time limit."""


class CheckSkippedError(Exception):
    """A check that does not apply here (e.g. bf16 on a GPU without it)."""


@dataclass
class Context:
    """What every check gets: the arguments, the device, the end of its time share."""

    args: argparse.Namespace
    device: torch.device
    deadline: float = math.inf
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    def sub_args(self, parser: argparse.ArgumentParser, *argv: str) -> argparse.Namespace:
        """A script's arguments for this run (device, quick, rounds), with the check's deadline."""
        base = ["--device", str(self.device), "--threads", str(self.args.threads)]
        if self.quick:
            base.append("--quick")
        args = parser.parse_args([*base, *argv])
        args.deadline = self.deadline
        return args


@dataclass
class Result:
    """What a check returns: one line for the summary, optional detail (markdown), data for JSON."""

    summary: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CheckTimeoutError` in the block after ``seconds`` (POSIX main thread; elsewhere no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CheckTimeoutError(f"stopped after its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# The checks ------------------------------------------------------------------------------------


def check_cuda_tests(ctx: Context) -> Result:
    paths = ["tests/test_cuda.py"] if ctx.quick else ["tests"]
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", *paths]
    timeout = max(5.0, ctx.deadline - time.perf_counter()) * 1.1
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    last = lines[-1].strip("= ") if lines else "(no output)"
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", last)}
    detail = "```\n$ " + " ".join(["python", *command[1:]]) + "\n" + "\n".join(lines[-25:]) + "\n```"
    if done.returncode != 0:
        raise RuntimeError(f"pytest exited with {done.returncode}: {last}\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    if ctx.device.type == "cuda" and not counts.get("passed"):
        raise RuntimeError(f"no CUDA test ran on a GPU: {last}")
    return Result(last, detail, {"counts": counts, "returncode": done.returncode})


def _pair(ctx: Context, num_classes: int = 10) -> tuple[nn.Module, nn.Module, int, int]:
    """The paper's pair, the batch and the attack steps; in --quick, small CNNs (they compile in seconds)."""
    if ctx.quick:
        return small_cnn(num_classes, 4), small_cnn(num_classes, 8), 4, 1
    return cifar_resnet18(num_classes), wide_resnet(34, 10, num_classes), 128, 10


def check_amp(ctx: Context) -> Result:
    device, sync = ctx.device, synchronizer(ctx.device)
    student0, teacher, batch, steps = _pair(ctx)
    C = 10
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, C, (batch,), device=device)
    eps = 8 / 255
    rows, data, notes = [], {}, []
    for name, precision in (("bf16", "bfloat16"), ("fp16 + GradScaler", "float16")):
        if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            rows.append([name, "skipped: no bf16 on this GPU", "", "", ""])
            continue
        student = _copy(student0).to(device)
        distiller = ABSLDStep(student, _copy(teacher), C, steps=steps, precision=precision).to(device)  # type: ignore[arg-type]
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")
        times, losses = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2 if ctx.quick else 4):
                sync()
                start = time.perf_counter()
                out = distiller(x, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(out.loss).backward()
                scaler.step(optimizer)
                scaler.update()
                sync()
                times.append(time.perf_counter() - start)
                losses.append(float(out.loss))
                dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
                if out.student_adv_logits.dtype != dtype or out.x_adv.dtype != torch.float32:
                    raise RuntimeError(f"{name}: logits {out.student_adv_logits.dtype}, x_adv {out.x_adv.dtype}")
                if float((out.x_adv - x).abs().max()) > eps + 1e-6:
                    raise RuntimeError(f"{name}: the attack left the eps ball")
        notes += sorted({str(w.message).split(":")[0] for w in caught})
        if not all(math.isfinite(v) for v in losses):
            raise RuntimeError(f"{name}: non-finite loss {losses}")
        if not all(bool(torch.isfinite(p).all()) for p in student.parameters()):
            raise RuntimeError(f"{name}: non-finite weights")
        ms = 1e3 * sorted(times[1:])[len(times[1:]) // 2]
        scale = f"{scaler.get_scale():.0f}" if scaler.is_enabled() else "-"
        rows.append([name, f"{ms:.1f}", f"{losses[0]:.4f} -> {losses[-1]:.4f}", scale, "yes"])
        data[name] = {"ms_per_step": ms, "losses": losses}
    headers = ["precision", "ms / step (eager)", "loss, first -> last", "GradScaler scale", "dtypes, eps ball"]
    detail = markdown_table(headers, rows) + "".join(f"\n\nWarning: {n}" for n in notes)
    summary = "; ".join(f"{r[0]} {r[1]} ms/step" for r in rows) + "; finite, dtypes and eps ball hold"
    return Result(summary, detail, data)


def _copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)


def check_compile(ctx: Context) -> Result:
    from torch._dynamo.utils import counters

    device, C = ctx.device, 10
    student0, teacher0, batch, steps = _pair(ctx)
    if ctx.quick:  # a smoke run: MLPs compile in a few seconds even with a cold cache
        student0, teacher0 = (
            nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, w), nn.ReLU(), nn.Linear(w, C)) for w in (8, 16)
        )
    student0, teacher0 = student0.to(device), teacher0.to(device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, C, (batch,), device=device)

    def make(compiled: bool) -> tuple[ABSLDStep, Callable[[], object]]:
        student = _copy(student0)
        distiller = ABSLDStep(
            student, _copy(teacher0), C, steps=steps, precision="auto", compile=compiled, random_start=None
        )
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        step = distiller_step(distiller.to(device), optimizer)
        return distiller, lambda: step(x, y)

    breaks_before = sum(counters["graph_break"].values())
    eager, eager_step = make(False)
    compiled, compiled_step = make(True)
    first = {"eager": float(eager_step()), "compiled": float(compiled_step())}  # same weights, same start
    difference = abs(first["compiled"] - first["eager"]) / max(abs(first["eager"]), 1e-12)
    compiled_step()  # warm
    graphs_warm = counters["stats"]["unique_graphs"]
    times = paired_rounds(
        {"eager step": eager_step, "compiled step": compiled_step},
        rounds=ctx.args.rounds,
        warmup=0,
        sync=synchronizer(device),
        deadline=ctx.deadline,
    )
    soft = torch.softmax(torch.randn(batch, C, device=device), 1)
    settings_input, context = precision_scope(compiled.precision, x)

    def attack(which: ABSLDStep) -> Callable[[], object]:
        def run() -> object:
            with context:
                return which.attack(settings_input, soft)

        return run

    attack_times = paired_rounds(
        {"eager attack": attack(eager), "compiled attack": attack(compiled)},
        rounds=ctx.args.rounds,
        warmup=1,
        sync=synchronizer(device),
        deadline=ctx.deadline + 10,
    )
    recompiled = counters["stats"]["unique_graphs"] - graphs_warm
    breaks = sum(counters["graph_break"].values()) - breaks_before
    step_ratio = ratio_stats(times.wall["eager step"], times.wall["compiled step"])[0]
    attack_ratio = ratio_stats(attack_times.wall["eager attack"], attack_times.wall["compiled attack"])[0]
    tolerance = 0.05 if auto_label(device).startswith(("bf16", "fp16")) else 1e-3
    problems = []
    if breaks:
        problems.append(f"{breaks} graph breaks: {dict(counters['graph_break'])}")
    if recompiled:
        problems.append(f"{recompiled} graphs compiled again once warm")
    if not difference <= tolerance:
        problems.append(f"first loss eager {first['eager']:.6f} vs compiled {first['compiled']:.6f}")
    cpu = device.type == "cpu"
    seconds = statistics.median(times.wall["compiled step"])
    hours = EPOCHS * math.ceil(CIFAR10_TRAIN / batch) * seconds / 3600
    speed = f"auto + compile: {batch / seconds:.0f} images/s, {hours:.2f} h for {EPOCHS} epochs of CIFAR-10"
    throughput = ctx.shared.get("throughput")
    if throughput is not None and not ctx.quick:
        speed += f", {1e3 * seconds / throughput['floor_ms']:.1f}x the FLOP floor"
    detail = "\n\n".join(
        [
            speed,
            f"ABSLDStep(precision='auto' -> {auto_label(device)}, compile=True) against eager; batch {batch}, "
            f"{steps} attack steps; first loss eager {first['eager']:.6f}, compiled {first['compiled']:.6f} "
            f"(relative difference {difference:.2e}); graph breaks {breaks}; graphs compiled once warm {recompiled}",
            comparison_table(times, "eager step", speedup=True, cpu_time=cpu),
            comparison_table(attack_times, "eager attack", speedup=True, first_column="attack", cpu_time=cpu),
        ]
    )
    if problems:
        raise RuntimeError("; ".join(problems) + "\n\n" + detail)
    summary = (
        f"compiled step {step_ratio:.2f}x eager, attack alone {attack_ratio:.2f}x; first loss within "
        f"{difference:.1e}; 0 graph breaks, 0 recompiles; {speed}"
    )
    ctx.shared["compile_ok"] = True
    data = {
        "step_speedup": step_ratio,
        "attack_speedup": attack_ratio,
        "first_loss": first,
        "compiled_ms_per_step": 1e3 * seconds,
        "compiled_images_per_s": batch / seconds,
        "compiled_hours_300_epochs": hours,
    }
    return Result(summary, detail, data)


def check_throughput(ctx: Context) -> Result:
    # Eager configurations here; the compile check times auto + compile on the same pair and batch.
    args = ctx.sub_args(throughput_parser(), "--no-compile", "--rounds", str(ctx.args.rounds))
    if ctx.quick:
        args.allow_cpu = True
    result = measure_throughput(args, ctx.device)
    ctx.shared["throughput"] = result
    best = max(result["rows"], key=lambda r: r["images_per_s"])
    summary = (
        f"best: {best['configuration']}, {best['images_per_s']:.0f} images/s, {best['hours_300_epochs']:.2f} h "
        f"for {EPOCHS} epochs, {best['time_over_floor']:.1f}x the FLOP floor"
    )
    floor = (
        f"FLOPs per step: {result['gflop_per_step']:.4g} GFLOP; bf16 matmul rate {result['bf16_matmul_tflops']:.3g} "
        f"TFLOP/s; floor {result['floor_ms']:.2f} ms per step ({result['floor_images_per_s']:.0f} images/s)"
    )
    return Result(summary, f"{result['caption']}\n\n{floor}\n\n{throughput_table(result)}", result)


def _ratio_summary(times: Timings, reference: str) -> dict[str, float]:
    return {name: ratio_stats(times.wall[reference], times.wall[name])[0] for name in times.wall if name != reference}


def check_vs_authors(ctx: Context) -> Result:
    argv = ["--model", "resnet18", "--compile-rows", "auto", "--rounds", str(ctx.args.rounds)]
    if not ctx.shared.get("compile_ok"):
        argv.append("--no-compile")  # the compile check did not finish: do not lose the eager ratios to it
    times, caption = vs_authors.measure(ctx.sub_args(vs_authors.build_parser(), *argv), ctx.device)
    ratios = _ratio_summary(times, vs_authors.REFERENCE)
    auto = {k: v for k, v in ratios.items() if "auto (" in k}
    summary = ", ".join(f"{k.removeprefix('torch-absld ')}: {v:.2f}x" for k, v in auto.items())
    summary += f"; default {ratios[vs_authors.DEFAULT]:.2f}x the authors' loop"
    table = comparison_table(times, vs_authors.REFERENCE, speedup=True, cpu_time=ctx.device.type == "cpu")
    return Result(summary, f"{caption}\n\n{table}", {"speedups": ratios})


def check_vs_torchattacks(ctx: Context) -> Result:
    argv = ["--model", "resnet18", "--rounds", str(ctx.args.rounds)]
    parser = vs_torchattacks.build_parser()
    # Eager first, in half the time; then the compiled attack (a new graph), whose failure keeps the eager ratios.
    eager_args = ctx.sub_args(parser, *argv, "--no-compile")
    eager_args.deadline = time.perf_counter() + 0.4 * (ctx.deadline - time.perf_counter())
    times, caption = vs_torchattacks.measure(eager_args, ctx.device)
    note = ""
    if not ctx.quick:
        try:
            times, caption = vs_torchattacks.measure(ctx.sub_args(parser, *argv), ctx.device)
        except (Exception, CheckTimeoutError) as error:
            note = f"\n\nThe compiled variant did not finish ({type(error).__name__}: {error}); eager ratios shown."
    ratios = _ratio_summary(times, vs_torchattacks.REFERENCE)
    summary = ", ".join(f"{k.removeprefix('KLPGDAttack (CE), ')}: {v:.2f}x" for k, v in ratios.items())
    table = comparison_table(
        times, vs_torchattacks.REFERENCE, speedup=True, first_column="attack", cpu_time=ctx.device.type == "cpu"
    )
    return Result(summary + " torchattacks' PGD", f"{caption}\n\n{table}{note}", {"speedups": ratios})


def check_flops(ctx: Context) -> Result:
    text = full_step_flops(ctx.device, 128, 10, tiny=ctx.quick)
    match = re.search(r"Whole step at batch 128: ([\d.]+) TFLOP", text)
    summary = f"{match.group(1)} TFLOP per step of 128" if match else "counted"
    throughput = ctx.shared.get("throughput")
    if throughput is not None:
        summary += f"; floor {throughput['floor_ms']:.1f} ms per step at {throughput['bf16_matmul_tflops']:.3g} TFLOP/s"
    if ctx.quick:
        summary += " (tiny models)"
    return Result(summary, text, {"tflop_per_step": float(match.group(1)) if match else None})


@dataclass(frozen=True)
class Check:
    name: str
    weight: float
    run: Callable[[Context], Result]


CHECKS = (
    Check("cuda-tests", 80, check_cuda_tests),
    Check("amp", 25, check_amp),
    Check("throughput", 60, check_throughput),
    Check("compile", 130, check_compile),
    Check("vs-authors", 60, check_vs_authors),
    Check("vs-torchattacks", 65, check_vs_torchattacks),
    Check("flops", 20, check_flops),
)


# Running and reporting ------------------------------------------------------------------------


def write_report(path: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
    rows = [[r["check"], r["status"], f"{r['seconds']:.0f} / {r['budget_s']:.0f}", r["summary"]] for r in records]
    lines = [
        "# torch-absld GPU suite",
        "",
        f"- command: `{header['command']}`",
        *(describe_machine(header["machine"]) if header["machine"] else []),
        f"- total: {header.get('total_s', 0):.0f} s of a {header['budget_s']:.0f} s budget",
        "",
        markdown_table(["check", "status", "seconds / budget", "result"], rows),
    ]
    for r in records:
        if r["detail"]:
            lines += ["", f"## {r['check']} ({r['status']})", "", r["detail"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({**header, "checks": records}, indent=2, default=str) + "\n")


def run_checks(ctx: Context, checks: Sequence[Check], out: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    end = start + ctx.args.budget_s
    for i, check in enumerate(checks):
        now = time.perf_counter()
        weights = sum(c.weight for c in checks[i:])
        share = max(1.0, (end - now) * check.weight / weights)
        ctx.deadline = now + 0.8 * share
        record: dict[str, Any] = {"check": check.name, "budget_s": share, "detail": "", "data": {}}
        print(f"[gpu_suite] {check.name}: up to {share:.0f} s", flush=True)
        try:
            with time_limit(1.15 * share + min(5.0, share / 2)):
                result = check.run(ctx)
            record.update(status="ok", summary=result.summary, detail=result.detail, data=result.data)
        except CheckSkippedError as skipped:
            record.update(status="skipped", summary=str(skipped))
        except (CheckTimeoutError, subprocess.TimeoutExpired) as timeout:
            record.update(status="timeout", summary=str(timeout).splitlines()[0])
        except Exception as error:  # one failure must not lose the other checks
            record.update(
                status="failed",
                summary=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                detail="```\n" + "".join(traceback.format_exception(error))[-4000:] + "\n```",
            )
        record["seconds"] = time.perf_counter() - now
        records.append(record)
        print(f"[gpu_suite] {check.name}: {record['status']} in {record['seconds']:.0f} s: {record['summary']}")
        header["total_s"] = time.perf_counter() - start
        write_report(out, header, records)
        gc.collect()
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    return records


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=6)
    parser.set_defaults(device="cuda")
    parser.add_argument("--out", required=True, help="the markdown report (the JSON goes next to it, .json)")
    parser.add_argument("--budget-s", type=float, default=440.0, help="time for all checks (default 440 s)")
    names = [c.name for c in CHECKS]
    parser.add_argument("--checks", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = setup(args)
    wanted = [name.strip() for name in args.checks.split(",") if name.strip()]
    unknown = sorted(set(wanted) - {c.name for c in CHECKS})
    if unknown:
        raise SystemExit(f"Unknown checks {unknown}; choose from {[c.name for c in CHECKS]}.")
    checks = [c for c in CHECKS if c.name in wanted]
    header = {
        "command": command_line(__file__, argv),
        "machine": machine_info(device),
        "budget_s": args.budget_s,
    }
    records = run_checks(Context(args, device), checks, Path(args.out), header)
    print(Path(args.out).read_text())
    print(load_at_end())
    return 0 if all(r["status"] in ("ok", "skipped") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
