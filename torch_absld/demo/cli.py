"""Command line of ``torch-absld demo`` and ``torch-absld compare``: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["build_parser", "main"]

PROG = "torch-absld"
DEMO, COMPARE = "demo", "compare"
_HELP = {
    DEMO: "ABSLD vs RSLAD on real data (scikit-learn digits), on a CPU, in minutes",
    COMPARE: "the ABSLD paper's Table 1 on real data: every method, class by class, seeds paired",
}
_DESCRIPTION = {
    DEMO: "For each seed: draw a train/test split, train an adversarially robust CNN teacher on it, then one MLP "
    "student per method from the same initialisation: RSLAD (temperatures frozen) and ABSLD (the library's default); "
    "--methods adds others, e.g. ABSLD-separate (the paper's separate temperatures). Evaluate every student class by "
    "class (clean, FGSM, PGD-20, CW-inf, APGD-CE + APGD-T) at its best and last epoch, compare each method with "
    "RSLAD seed by seed (mean, 95% confidence interval, sign test) and write report.md, results.json and plots. "
    "The default run took 168 s (314 s of CPU time) on 2 quiet cores of an AVX2 AMD EPYC.",
    COMPARE: "The paper's comparison on one harness: for each seed a split and a teacher, then one student per "
    "registered method from the same initialisation, data order and attack noise (methods differ only in their "
    "training objective), evaluated class by class (clean, FGSM, PGD-20, CW-inf and AutoAttack's APGD-CE + APGD-T, "
    "or all of AutoAttack with --autoattack standard) at the best and last epoch. Reports the paper's Table 1 "
    "layout (Avg., Worst, Overall, NSD; mean and 95% confidence interval over seeds), ABSLD minus every other "
    "method seed by seed, and per-class plots. The default run (ten methods, 5 seeds, teachers of 20 epochs then) "
    "took 12.5 minutes on 2 CPU cores; --quick took 2 minutes.",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _defaults(command: str) -> tuple[str, ...]:
    from .methods import DEFAULT_METHODS, compare_methods

    return compare_methods() if command == COMPARE else DEFAULT_METHODS


def _add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    from .config import AUTOATTACK_MODES, QUICK_CHANGES, DemoConfig
    from .data import DATASETS
    from .methods import students

    n, out = {"type": int, "metavar": "N"}, f"absld-{command}"
    for flag, options, text in (
        ("--seeds", n, f"paired runs, one per seed (default {DemoConfig.seeds})"),
        ("--seed", {"type": int, "default": 0, "metavar": "S"}, "first seed; seed S+i draws run i's "
         "split, teacher and students' start (default 0)"),
        ("--quick", {"action": "store_true"}, f"{QUICK_CHANGES['seeds']} seed, {QUICK_CHANGES['epochs']} "
         f"student and {QUICK_CHANGES['teacher_epochs']} teacher epochs: checks the pipeline (the demo in 41 s "
         "on 2 cores)"),
        ("--epochs", n, f"student epochs (default {DemoConfig.epochs})"),
        ("--teacher-epochs", n, f"teacher epochs (default {DemoConfig.teacher_epochs})"),
        ("--dataset", {"default": "digits", "metavar": "NAME"}, f"one of {', '.join(DATASETS)} (default digits; "
         "mnist and cifar10 are downloaded with torchvision)"),
        ("--data-dir", {"metavar": "DIR"}, "where downloaded datasets go (default ~/.cache/torch_absld)"),
        ("--eps", {"type": float}, "L-inf radius (default 0.1 for digits, 0.3 for mnist, 8/255 for cifar10)"),
        ("--methods", {"metavar": "A,B,..."}, f"students trained for every seed, from {', '.join(students())} (any "
         f"case; default {','.join(_defaults(command))})"),
        ("--autoattack", {"choices": AUTOATTACK_MODES, "default": "apgd"}, "AutoAttack on the best and last "
         "students: apgd = APGD-CE then APGD-T (default), standard = all four attacks (about 4x the evaluation "
         "time), none"),
        ("--device", {"default": "cpu", "metavar": "DEVICE"}, "torch device, e.g. cuda (default cpu)"),
        ("--threads", {**n, "default": 1}, "CPU threads for torch in each process (default 1: fastest for these "
         "tiny nets)"),
        ("--workers", n, "processes that train the teachers and students side by side, one job each (default: one "
         "per usable CPU; 1 runs them in this process). The numbers do not depend on it"),
        ("--out", {"default": out, "metavar": "DIR"}, f"output folder (default {out}/)"),
        ("--quiet", {"action": "store_true"}, "no progress output (the results are still printed)"),
    ):  # fmt: skip
        parser.add_argument(flag, help=text, **options)


def build_parser() -> argparse.ArgumentParser:
    """The ``torch-absld`` parser with its ``demo`` and ``compare`` commands."""
    from .. import __version__

    parser = _Parser(prog=PROG, description="torch-absld: Anti-Bias Soft Label Distillation for PyTorch.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (DEMO, COMPARE):
        _add_arguments(commands.add_parser(command, help=_HELP[command], description=_DESCRIPTION[command]), command)
    return parser


def _fail(command: str, message: str, status: int = 2) -> int:
    print(f"{PROG} {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _config(args: argparse.Namespace) -> Any:
    from .config import QUICK_CHANGES, DemoConfig
    from .methods import resolve

    methods = _defaults(args.command)
    if args.methods is not None:
        methods = tuple(resolve(name) for name in args.methods.split(",") if name.strip())
    focus = "ABSLD" if args.command == COMPARE and "ABSLD" in methods else None
    fields = {f.name for f in dataclasses.fields(DemoConfig)} - {"methods", "focus", "progress"}
    given = {key: value for key, value in vars(args).items() if key in fields and value is not None}
    quick = QUICK_CHANGES if args.quick else {}
    return DemoConfig(**{**quick, **given}, methods=methods, focus=focus, progress=not args.quiet)


def run(args: argparse.Namespace) -> int:
    """Run ``torch-absld demo`` or ``compare`` with parsed arguments; returns the exit status."""
    import torch

    from .data import DATASETS, DatasetUnavailableError

    name = args.command
    if args.dataset not in DATASETS:
        return _fail(name, f"unknown --dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    try:
        config = _config(args)
        device = torch.device(config.device)
    except (ValueError, RuntimeError) as error:
        return _fail(name, str(error).replace("`", ""))
    if device.type == "cuda" and not torch.cuda.is_available():
        return _fail(name, f"--device {args.device!r} but CUDA is not available on this machine")
    if not torch.amp.is_autocast_available(device.type):  # meta, ...: no data to train on
        return _fail(name, f"--device {args.device!r} cannot train: pass cpu, cuda or cuda:N")
    needed = ["matplotlib", "scipy", "sklearn" if config.dataset == "digits" else "torchvision"]
    needed += ([] if args.quiet else ["tqdm"]) + ([] if config.autoattack == "none" else ["pyautoattack"])
    for module in needed:  # found, not imported: the workers import what they use
        if importlib.util.find_spec(module) is None:
            return _fail(name, f'the {name} needs {module}: pip install "torch-absld[demo]"')
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-").close()
    except OSError as error:
        return _fail(name, f"cannot write to --out {str(out)!r}: {error.strerror or error}")
    from . import experiment

    try:
        results = experiment.run_demo(config, out, name)
    except DatasetUnavailableError as error:
        return _fail(name, str(error), 1)
    except KeyboardInterrupt:
        return _fail(name, "interrupted", 130)
    from .report import terminal_summary

    print(terminal_summary(results))
    print(f"\nWrote {out / 'report.md'}, {out / 'results.json'} and the plots ({results['seconds']:.0f} s).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torch-absld`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command: demo or compare")
    return run(args)
