"""Command line of ``torch-absld demo`` and ``torch-absld compare``: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .config import DemoConfig

__all__ = ["build_parser", "main"]

PROG = "torch-absld"


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= minimum`` with a one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


@dataclass(frozen=True)
class _Command:
    """What differs between ``demo`` and ``compare``: defaults, texts, and the paired comparisons."""

    name: str
    methods: tuple[str, ...]
    out: str
    help: str
    description: str
    focus: str | None


def _commands() -> dict[str, _Command]:
    from .methods import COMPARE_METHODS, DEFAULT_METHODS

    return {
        "demo": _Command(
            "demo",
            DEFAULT_METHODS,
            "absld-demo",
            "ABSLD vs RSLAD on real data (scikit-learn digits), on a CPU, in minutes",
            "For each seed: draw a train/test split, train an adversarially robust CNN teacher on it, then one MLP "
            "student per method from the same initialisation: RSLAD (temperatures frozen), ABSLD (the library's "
            "default) and ABSLD with the paper's separate temperatures. Evaluate every student class by class "
            "(clean, FGSM, PGD-20, CW-inf, APGD-CE + APGD-T) at its best and last epoch, compare each method with "
            "RSLAD seed by seed (mean, 95%% confidence interval, sign test) and write report.md, results.json "
            "and plots. The default run took 2.5 to 4 minutes on 2 CPU cores.",
            None,
        ),
        "compare": _Command(
            "compare",
            COMPARE_METHODS,
            "absld-compare",
            "the ABSLD paper's Table 1 on real data: every method, class by class, seeds paired",
            "The paper's comparison on one harness: for each seed a split and a teacher, then one student per "
            "method from the same initialisation, data order and attack noise (methods differ only in their "
            "training objective), evaluated class by class (clean, FGSM, PGD-20, CW-inf and AutoAttack's APGD-CE "
            "+ APGD-T, or all of AutoAttack with --autoattack standard) at the best and last epoch. Reports the "
            "paper's Table 1 layout (Avg., Worst, Overall, NSD; mean and 95%% confidence interval over seeds), "
            "ABSLD minus every other method seed by seed, and per-class plots. The default run (ten methods, "
            "5 seeds) took 12.5 minutes on 2 CPU cores.",
            "ABSLD",
        ),
    }


def _add_arguments(parser: argparse.ArgumentParser, command: _Command) -> None:
    from .config import AUTOATTACK_MODES
    from .data import DATASETS
    from .methods import METHODS

    parser.add_argument(
        "--seeds", type=_positive_int, default=None, metavar="N", help="paired runs, one per seed (default 5)"
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="S",
        help="first seed; seed S+i draws run i's split, teacher and students' start (default 0)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 40 student and 8 teacher epochs: checks the pipeline in about a minute",
    )
    parser.add_argument("--epochs", type=_positive_int, default=None, metavar="N", help="student epochs (default 120)")
    parser.add_argument(
        "--teacher-epochs", type=_positive_int, default=None, metavar="N", help="teacher epochs (default 20)"
    )
    parser.add_argument(
        "--dataset",
        default="digits",
        metavar="NAME",
        help=f"one of {', '.join(DATASETS)} (default digits; mnist and cifar10 are downloaded with torchvision)",
    )
    parser.add_argument(
        "--data-dir", default=None, metavar="DIR", help="where downloaded datasets go (default ~/.cache/torch_absld)"
    )
    parser.add_argument(
        "--eps",
        type=float,
        default=None,
        help="L-inf radius (default 0.1 for digits, 0.3 for mnist, 8/255 for cifar10)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        metavar="A,B,...",
        help=f"students trained for every seed, from {', '.join(METHODS)} (any case; default "
        f"{','.join(command.methods)})",
    )
    parser.add_argument(
        "--autoattack",
        choices=AUTOATTACK_MODES,
        default="apgd",
        help="AutoAttack on the best and last students: apgd = APGD-CE then APGD-T (default), "
        "standard = all four attacks (about 4x the evaluation time), none",
    )
    if command.name == "demo":
        parser.add_argument("--compare-coupled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help="torch device, e.g. cuda (default cpu)")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        default=1,
        help="CPU threads for torch in each process (default 1: fastest for these tiny nets)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        default=None,
        help=(
            "processes that train the teachers and students side by side, one job each "
            "(default: one per usable CPU; 1 runs them in this process). The numbers do not depend on it"
        ),
    )
    parser.add_argument("--out", default=command.out, metavar="DIR", help=f"output folder (default {command.out}/)")
    parser.add_argument("--quiet", action="store_true", help="no progress output (the results are still printed)")


def build_parser() -> argparse.ArgumentParser:
    """The ``torch-absld`` parser with its ``demo`` and ``compare`` commands."""
    parser = _Parser(prog=PROG, description="torch-absld: Anti-Bias Soft Label Distillation for PyTorch.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _commands().values():
        sub = commands.add_parser(command.name, help=command.help, description=command.description)
        _add_arguments(sub, command)
    return parser


def _fail(command: str, message: str, status: int = 2) -> int:
    print(f"{PROG} {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _check_out_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
        pass


def _check_extras(dataset: str, quiet: bool, command: str, autoattack: str = "none") -> None:
    """Every optional package the run will import, checked before anything is trained."""
    import importlib

    needed = (
        ["matplotlib", "scipy"]
        + (["sklearn"] if dataset == "digits" else ["torchvision"])
        + ([] if quiet else ["tqdm"])
        + ([] if autoattack == "none" else ["pyautoattack"])
    )
    for module in needed:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ImportError(f'the {command} needs {module}: pip install "torch-absld[demo]"') from None


def _config(args: argparse.Namespace, command: _Command) -> DemoConfig:
    from .config import QUICK_CHANGES, DemoConfig
    from .methods import resolve_method

    methods = command.methods
    if args.methods is not None:
        methods = tuple(resolve_method(name) for name in args.methods.split(",") if name.strip())
    fields: dict[str, Any] = {
        "dataset": args.dataset,
        "seed": args.seed,
        "eps": args.eps,
        "methods": methods,
        "focus": command.focus if command.focus in methods else None,
        "autoattack": args.autoattack,
        "device": args.device,
        "threads": args.threads,
        "workers": args.workers,
        "progress": not args.quiet,
    }
    if args.data_dir is not None:
        fields["data_dir"] = args.data_dir
    if args.quick:
        fields.update(QUICK_CHANGES)
    for name in ("seeds", "epochs", "teacher_epochs"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return DemoConfig(**fields)


def run(args: argparse.Namespace, command: _Command) -> int:
    """Run ``torch-absld demo`` or ``compare`` with parsed arguments; returns the exit status."""
    import torch

    from .data import DATASETS, DatasetUnavailableError
    from .experiment import run_demo
    from .report import terminal_summary

    name = command.name
    if args.dataset not in DATASETS:
        return _fail(name, f"unknown --dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    if getattr(args, "compare_coupled", False):
        print(
            f"{PROG} demo: --compare-coupled is deprecated and does nothing: both temperature couplings run by "
            "default (see --methods).",
            file=sys.stderr,
        )
    try:
        config = _config(args, command)
        device = torch.device(config.device)
    except (ValueError, RuntimeError) as error:
        return _fail(name, str(error).replace("`", ""))
    if device.type == "cuda" and not torch.cuda.is_available():
        return _fail(name, f"--device {args.device!r} but CUDA is not available on this machine")
    try:
        _check_extras(config.dataset, args.quiet, name, config.autoattack)
    except ImportError as error:
        return _fail(name, str(error))
    out = Path(args.out)
    try:
        _check_out_dir(out)
    except OSError as error:
        return _fail(name, f"cannot write to --out {str(out)!r}: {error.strerror or error}")
    try:
        results = run_demo(config, out, name)
    except DatasetUnavailableError as error:
        return _fail(name, str(error), 1)
    except KeyboardInterrupt:
        return _fail(name, "interrupted", 130)
    print(terminal_summary(results))
    print(f"\nWrote {out / 'report.md'}, {out / 'results.json'} and the plots ({results['seconds']:.0f} s).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torch-absld`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command: demo or compare")
    return run(args, _commands()[args.command])
