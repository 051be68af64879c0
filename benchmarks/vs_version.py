"""This checkout against an earlier version of torch-absld, in one process, in paired rounds.

``git archive`` exports the package at ``--ref`` into a temporary folder under another name
(the package imports itself only relatively, so both versions load side by side), and the
same model, batch and data run through both versions' public modules: ``KLPGDAttack`` with
cross-entropy, and one ABSLD training step built from ``ABSLDLoss`` and ``KLPGDAttack``
(the authors' product temperatures in both: ``coupling="script"`` before 0.2, ``"product"``
since). A ratio above 1 means this checkout is slower.

Across processes on a shared CPU, one process can run the same kernels 10-20% slower than
another (memory placement, a busy sibling core); inside one process, rounds are paired.
Run it a few times and read the spread of the per-process medians, not one table.

    python benchmarks/vs_version.py --ref 7d0cc1a       # the 0.1 layout, before the restructuring
    python benchmarks/vs_version.py --ref HEAD --quick  # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import torch
from _bench_models import small_cnn
from _bench_step import absld_step
from _timing import (
    Timings,
    add_common_args,
    comparison_table,
    describe_environment,
    load_at_end,
    paired_rounds,
    setup,
    synchronizer,
)

import torch_absld

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = "torch_absld"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, rounds=10)
    parser.add_argument("--ref", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="attack steps")
    parser.add_argument("--width", type=int, default=32, help="small CNN width (the teacher is twice as wide)")
    return parser


@contextlib.contextmanager
def version(ref: str) -> Iterator[ModuleType]:
    """The package as it was at git revision ``ref``, imported as ``torch_absld_<ref>``, unloaded on exit."""
    with tempfile.TemporaryDirectory(prefix="absld-version-") as folder:
        package = load_version(ref, Path(folder))
        try:
            yield package
        finally:
            sys.path.remove(folder)
            for name in [name for name in sys.modules if name.split(".")[0] == package.__name__]:
                del sys.modules[name]


def load_version(ref: str, folder: Path) -> ModuleType:
    """Export the package at git revision ``ref`` into ``folder`` and import it as ``torch_absld_<ref>``."""
    archive = folder / "package.tar"
    try:
        subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", "--format=tar", f"--output={archive}", ref, PACKAGE],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise SystemExit(f"Could not export {PACKAGE} at {ref!r} with git archive: {detail.strip()}") from err
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(folder, filter="data")
        else:  # pragma: no cover - our own git archive, read from the repository
            tar.extractall(folder)
    name = f"{PACKAGE}_{''.join(c if c.isalnum() else '_' for c in ref)}"
    (folder / PACKAGE).rename(folder / name)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def product_loss(package: ModuleType, num_classes: int) -> torch.nn.Module:
    """The version's ``ABSLDLoss`` with the product temperatures, under the name that version uses."""
    for coupling in ("product", "script"):
        try:
            return package.ABSLDLoss(num_classes, coupling=coupling)  # type: ignore[no-any-return]
        except ValueError:
            continue
    raise SystemExit(f"{package.__name__}.ABSLDLoss knows neither coupling 'product' nor 'script'.")


def measure(args: argparse.Namespace, device: torch.device, earlier: ModuleType) -> tuple[Timings, str]:
    """Time both versions' attack and training step on the same model and data."""
    width = 8 if args.quick else args.width
    batch = 16 if args.quick else args.batch
    steps = 2 if args.quick else args.steps
    num_classes = 10
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.rand(batch, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, num_classes, (batch,), generator=generator).to(device)
    teacher = small_cnn(num_classes, 2 * width).to(device).eval()
    attack_model = small_cnn(num_classes, width).to(device).eval()
    settings = {"eps": 8 / 255, "step_size": 2 / 255, "steps": steps}

    def attack(package: ModuleType) -> Callable[[], object]:
        run = package.KLPGDAttack(attack_model, random_start="uniform", **settings)
        return lambda: run(x, y)

    def step(package: ModuleType) -> Callable[[], object]:
        torch.manual_seed(args.seed)
        student = small_cnn(num_classes, width).to(device)
        optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
        run = absld_step(
            student,
            teacher,
            product_loss(package, num_classes),  # type: ignore[arg-type]
            package.KLPGDAttack(student, **settings),
            optimizer,
            device=device,
        )
        return lambda: run(x, y)

    before, after = f"at {args.ref}", "this checkout"
    candidates = {
        f"KLPGDAttack (CE), {before}": attack(earlier),
        f"KLPGDAttack (CE), {after}": attack(torch_absld),
        f"ABSLD step, {before}": step(earlier),
        f"ABSLD step, {after}": step(torch_absld),
    }
    times = paired_rounds(candidates, rounds=args.rounds, warmup=1, sync=synchronizer(device))
    caption = (
        f"{PACKAGE} {torch_absld.__version__} (this checkout) against {earlier.__version__} ({args.ref}); small CNN "
        f"width {width}, teacher width {2 * width}, batch {batch}, {steps} attack steps, {times.rounds} paired "
        "rounds; ratio = this checkout's time / the earlier version's time (below 1: faster now)"
    )
    return times, caption


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    device = setup(args)
    print(describe_environment(device, __file__, argv))
    with version(args.ref) as earlier:
        times, caption = measure(args, device, earlier)
    cpu_time = device.type == "cpu"
    print()
    print(caption)
    for kind in ("KLPGDAttack (CE)", "ABSLD step"):
        part = Timings(
            {name: t for name, t in times.wall.items() if name.startswith(kind)},
            {name: t for name, t in times.cpu.items() if name.startswith(kind)},
        )
        print()
        reference = f"{kind}, at {args.ref}"
        print(comparison_table(part, reference, speedup=False, first_column="candidate", cpu_time=cpu_time))
    print()
    print(load_at_end())


if __name__ == "__main__":
    main()
