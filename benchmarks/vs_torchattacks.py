"""``KLPGDAttack`` with cross-entropy against ``torchattacks.PGD``.

Same model (eval mode), batch, eps 8/255, step 2/255, 10 steps, uniform random start in the
eps-ball, integer labels: both run the same Madry PGD. torch-absld runs with its argument
checks on (default), off, and with the attack step compiled (``compile=True``).

    python benchmarks/vs_torchattacks.py            # CPU, the numbers in RESULTS.md
    python benchmarks/vs_torchattacks.py --quick    # smoke run (no compile)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import torch
from _bench_models import cifar_resnet18, small_cnn
from _timing import (
    Timings,
    add_common_args,
    paired_rounds,
    run_speedup_script,
    synchronizer,
)

from torch_absld import KLPGDAttack

REFERENCE = "torchattacks.PGD"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", choices=("cnn", "resnet18"), default="cnn")
    parser.add_argument("--width", type=int, default=32, help="small CNN width")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variant (implied by --quick)")
    return parser


def measure(args: argparse.Namespace, device: torch.device) -> tuple[Timings, str]:
    """Time torchattacks' PGD and ours in paired rounds; return the timings and the caption."""
    try:
        import torchattacks
    except ImportError as err:  # pragma: no cover - torchattacks is in the test extra
        raise SystemExit('This benchmark needs torchattacks: pip install "torch-absld[test]"') from err
    compile_ = not (args.no_compile or args.quick)
    if args.model == "resnet18":
        model = cifar_resnet18(10, 8 if args.quick else 64)
    else:
        model = small_cnn(10, 8 if args.quick else args.width)
    model = model.to(device).eval()
    batch = 16 if args.quick else args.batch
    steps = 2 if args.quick else args.steps
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    eps, step_size = 8 / 255, 2 / 255

    reference = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=True)

    def ours(**kwargs: object) -> Callable[[], object]:
        attack = KLPGDAttack(model, eps=eps, step_size=step_size, steps=steps, random_start="uniform", **kwargs)  # type: ignore[arg-type]
        return lambda: attack(x, y)

    candidates: dict[str, Callable[[], object]] = {
        REFERENCE: lambda: reference(x, y),
        "KLPGDAttack (CE), default": ours(),
        "KLPGDAttack (CE), validate_args=False": ours(validate_args=False),
    }
    if compile_:
        candidates["KLPGDAttack (CE), compile=True"] = ours(compile=True)
    times = paired_rounds(
        candidates,
        rounds=args.rounds,
        warmup=2 if compile_ else 1,
        sync=synchronizer(device),
        deadline=getattr(args, "deadline", None),
    )
    label = "CIFAR ResNet-18" if args.model == "resnet18" else "small CNN"
    caption = (
        f"L-inf PGD-{steps} with cross-entropy, {label} in eval mode, batch {batch}, eps 8/255, step 2/255, "
        f"uniform start, {times.rounds} paired rounds; speedup = torchattacks time / candidate time"
    )
    return times, caption


def main(argv: Sequence[str] | None = None) -> None:
    run_speedup_script(build_parser().parse_args(argv), __file__, argv, measure, REFERENCE, first_column="attack")


if __name__ == "__main__":
    main()
