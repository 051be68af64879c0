"""ABSLD (or any registered method) on CIFAR-10 / CIFAR-100, on one device or under torchrun.

Student ResNet-18 or MobileNet-v2 (CIFAR variants), teacher WideResNet-34-10 loaded from your
checkpoint, SGD lr 0.1 (momentum 0.9, weight decay 2e-4), 300 epochs, lr / 10 at epochs 215,
260 and 285 with the temperature learning rate beta following it, eps 8/255, 10 attack steps
of 2/255. Every epoch: a JSON line with the per-class temperatures and risks, a PGD
evaluation of the student, the best-Overall checkpoint, and ``last.pt`` to resume from.

    python examples/cifar_absld.py --teacher wrn34_trades.pt --dataset cifar10 --out runs/absld
    torchrun --nproc-per-node 4 examples/cifar_absld.py --teacher wrn34_trades.pt --compile
    python examples/cifar_absld.py --resume runs/absld/last.pt          # continue exactly
    python examples/cifar_absld.py --smoke                              # seconds, generated data
    torchrun --standalone --nproc-per-node 2 examples/cifar_absld.py --smoke  # the same on 2 CPU ranks
    python examples/cifar_absld.py --method trades --recipe official    # TRADES as its authors ran it

``--method`` is any of ``torch_absld.methods.available()``; ``--recipe official`` (the authors'
script) or ``absld`` (the ABSLD paper's setting) sets epochs, batch, SGD, schedule, attack and the
method's options from ``torch_absld.methods.recipe(NAME)``; explicit flags win, ``--option
KEY=VALUE`` sets any option of ``methods.create``. FRL and CFA hold out ``--validation-fraction``
of the training set; methods without a teacher ignore ``--teacher``.

Without ``--out``, a ``--smoke`` run writes into a fresh temporary folder (one for all ranks:
rank 0 makes it and sends its path to the others), prints its path, and removes it at the end;
pass ``--out DIR`` to keep the files.

Precision and layout: ``--amp auto`` (the default) trains in bf16 where the device runs it
natively (GPUs of compute capability 8.0 and up, CPUs with AVX512-BF16 or AMX), in fp16 with a
GradScaler on GPUs with fp16 tensor cores only, and in float32 elsewhere; ``--channels-last
auto`` uses channels_last tensors where they pay (CPUs, and GPUs in bf16 / fp16). The choice
and its reason are printed at the start (``torch_absld.fastest_settings``). ``--amp fp32
--channels-last off`` is the float32, NCHW training of earlier versions.

Inputs stay in [0, 1]; a teacher trained on normalised images needs
``nn.Sequential(torch_absld.Normalize(mean, std), teacher)``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import gc
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

from torch_absld import ABSLDLoss, BestCheckpoint, evaluate_robustness, follow_optimizer_lr, load_weights, methods
from torch_absld.evaluation import stratified_split
from torch_absld.precision_flags import add_precision_flags, settings_from_flags

try:
    from torch_absld.methods import recipe
except ImportError:
    from torch_absld.methods._recipes import recipe

# --------------------------------------------------------------------------------------------
# Models: CIFAR variants (3x3 stem, no max-pool) of ResNet-18 and MobileNet-v2, and the
# WideResNet of TRADES (same parameter names, so TRADES / RSLAD checkpoints load as they are).
# --------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, in_planes = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2**i
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        planes = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    # (expansion, out_planes, num_blocks, stride); strides of the first blocks are 1 for 32x32 inputs.
    CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 10, width_mult: float = 1.0) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(c * width_mult))

        self.conv1 = nn.Conv2d(3, ch(32), 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch(32))
        blocks, in_planes = [], ch(32)
        for expansion, out_planes, num_blocks, stride in self.CFG:
            for i in range(num_blocks):
                blocks.append(InvertedResidual(in_planes, ch(out_planes), expansion, stride if i == 0 else 1))
                in_planes = ch(out_planes)
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(in_planes, ch(1280), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch(1280))
        self.linear = nn.Linear(ch(1280), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class WideBasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(x))
        shortcut = x if self.convShortcut is None else self.convShortcut(out)
        out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
        return shortcut + out


class NetworkBlock(nn.Module):
    def __init__(self, num_layers: int, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                for i in range(num_layers)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-depth-width with the parameter names of TRADES' ``wideresnet.py``."""

    def __init__(self, depth: int = 34, widen_factor: int = 10, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"Expected `depth` = 6n + 4, but got {depth}.")
        n = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, channels[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1)
        self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1)  # unused, present in TRADES checkpoints
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(channels[3], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build_student(name: str, num_classes: int, width: float) -> nn.Module:
    if name == "resnet18":
        return ResNet18(num_classes, width=max(4, int(64 * width)))
    return MobileNetV2(num_classes, width_mult=width)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def synthetic_cifar(num_samples: int, num_classes: int, seed: int) -> TensorDataset:
    """CIFAR-shaped images in [0, 1]: one smooth pattern per class plus noise, balanced classes."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.nn.functional.interpolate(
        torch.rand(num_classes, 3, 4, 4, generator=g), size=32, mode="bilinear"
    )
    labels = torch.arange(num_samples) % num_classes
    noise = 0.15 * torch.randn(num_samples, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1))
    return TensorDataset((prototypes[labels] + noise).clamp(0, 1), labels)


def cifar(name: str, root: str, train: bool, rank: int, augment: bool) -> Dataset[Any]:
    from torchvision import datasets, transforms

    crop_flip = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    transform = transforms.Compose([*crop_flip, transforms.ToTensor()])  # [0, 1], no normalisation
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    if rank == 0:
        cls(root, train=train, download=True)
    barrier()
    return cls(root, train=train, download=False, transform=transform)


# --------------------------------------------------------------------------------------------
# Distributed helpers (no-ops in one process)
# --------------------------------------------------------------------------------------------


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if distributed():
        dist.barrier()


def all_reduce(tensor: Tensor) -> Tensor:
    if distributed():
        dist.all_reduce(tensor)
    return tensor


def setup_device(requested: str | None) -> tuple[torch.device, int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() and requested != "cpu"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        return device, dist.get_rank(), dist.get_world_size()
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu")), 0, 1


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

SMOKE = {
    "synthetic": True,
    "train_samples": 64,
    "test_samples": 40,
    "batch_size": 16,
    "epochs": 2,
    "milestones": [1],
    "student_width": 0.125,
    "teacher_depth": 10,
    "teacher_width": 1,
    "attack_steps": 2,
    "eval_pgd_steps": 2,
    "workers": 0,
}


# The flags of ABSLD's (and RSLAD's) loss: flag -> option of methods.create. Unset: the method's default.
LOSS_FLAGS = {"beta": "lr", "min_temperature": "min_temperature", "max_temperature": "max_temperature"}
LOSS_FLAGS |= {"adapt": "adapt", "coupling": "coupling"}


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``, VALUE a Python literal if it reads as one, else the string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, but got {text!r}")
    try:
        return key.replace("-", "_"), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.replace("-", "_"), value


def recipe_defaults(name: str, source: str) -> dict[str, Any]:
    """The flags a recipe sets (flags given explicitly still win)."""
    r = recipe(name, source)
    run = {key: getattr(r, key) for key in ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay")}
    attack = {"eps": r.attack.eps, "attack_step_size": r.attack.step_size, "attack_steps": r.attack.steps}
    return run | attack | {"milestones": [start for start, _ in r.schedule[1:]]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="generated data, tiny models, 2 epochs (seconds on a CPU)")
    p.add_argument("--method", choices=methods.available(), default="absld")
    p.add_argument("--recipe", choices=["none", "official", "absld"], default="none", help="none: the flags below")
    p.add_argument("--option", type=key_value, action="append", default=[], help="KEY=VALUE: of methods.create")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--synthetic", action="store_true", help="generated CIFAR-shaped data instead of torchvision's")
    p.add_argument("--train-samples", type=int, default=None, help="synthetic: number of training images")
    p.add_argument("--test-samples", type=int, default=None, help="synthetic / subset: number of test images")
    p.add_argument("--student", choices=["resnet18", "mobilenetv2"], default="resnet18")
    p.add_argument("--student-width", type=float, default=1.0, help="channel multiplier of the student")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (state dict; module./_orig_mod. tolerated)")
    p.add_argument("--init", default=None, help="student checkpoint to start from (FRL's recipe fine-tunes one)")
    p.add_argument("--teacher-depth", type=int, default=34)
    p.add_argument("--teacher-width", type=int, default=10)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size (split across ranks)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--weight-decay", type=float, default=2e-4)
    p.add_argument("--milestones", type=int, nargs="*", default=[215, 260, 285])
    p.add_argument("--beta", type=float, help="ABSLD: temperature learning rate, follows the lr (0.1)")
    p.add_argument("--min-temperature", type=float, help="ABSLD (0.5)")
    p.add_argument("--max-temperature", type=float, help="ABSLD (5.0)")
    p.add_argument("--adapt", choices=["both", "adv", "none"], help="ABSLD (both); 'none' is RSLAD")
    p.add_argument(
        "--coupling", choices=["separate", "product"], help="ABSLD: 'separate', Eq. 12; 'product', the script's"
    )
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--attack-step-size", type=float, default=2 / 255)
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--validation-fraction", type=float, default=0.02, help="FRL, CFA: share held out per class")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and after the last)")
    p.add_argument("--eval-pgd-steps", type=int, default=20)
    add_precision_flags(p)  # --amp, --channels-last
    p.add_argument("--compile", action="store_true", help="torch.compile the student, teacher and attack step")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms")
    p.add_argument(
        "--out",
        default=None,
        help="output directory (default: runs/METHOD; with --smoke a temporary folder, removed at the end)",
    )
    p.add_argument("--resume", default=None, help="a last.pt to continue from, or 'auto' for OUT/last.pt if present")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch (to test resuming)")
    p.add_argument("--log-all-ranks", action="store_true", help="every rank writes log.rank<R>.jsonl")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    first = parser.parse_args(argv)
    if first.recipe != "none":
        parser.set_defaults(**recipe_defaults(first.method, first.recipe))
    if first.smoke:
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    if args.out is None and not args.smoke:
        args.out = f"runs/{args.method}"
    if args.teacher is None and not args.smoke and methods.get(args.method).needs_teacher:
        parser.error("--teacher PATH is required (a WideResNet state dict); --smoke makes a random one")
    accepted = methods.options(args.method)
    wrong = [f"--{flag.replace('_', '-')}" for flag, key in LOSS_FLAGS.items() if key not in accepted]
    if given := [flag for flag in wrong if getattr(args, flag[2:].replace("-", "_")) is not None]:
        parser.error(f"{', '.join(given)}: options of ABSLD and RSLAD, not of --method {args.method}")
    return args


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Every epoch starts from a seed of its own: a resumed run draws exactly what a straight one does."""
    torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def resolve_speed_settings(args: argparse.Namespace, device: torch.device) -> tuple[str, bool, str]:
    """``--amp`` and ``--channels-last`` for this device: (precision, channels_last, reason)."""
    # allow_fp16: this loop scales fp16 losses with a GradScaler.
    return settings_from_flags(args.amp, args.channels_last, device, allow_fp16=True)


def evaluate(student: nn.Module, loader: DataLoader[Any], num_classes: int, args: argparse.Namespace) -> Any:
    """Clean and PGD accuracy per class (all ranks take part; the counts are all-reduced)."""
    return evaluate_robustness(
        student,
        loader,
        num_classes,
        attacks=("clean", "pgd"),
        eps=args.eps,
        progress=False,
        seed=0,
        attack_overrides={"pgd": {"steps": args.eval_pgd_steps}},
    )


def smoke_teacher_checkpoint(args: argparse.Namespace, num_classes: int, rank: int) -> str:
    """A random tiny teacher saved as a DDP would save it (``module.`` keys), to exercise loading."""
    path = os.path.join(args.out, "smoke_teacher.pt")
    if rank == 0:
        torch.manual_seed(args.seed + 12345)
        teacher = WideResNet(args.teacher_depth, args.teacher_width, num_classes)
        torch.save({"state_dict": {f"module.{k}": v for k, v in teacher.state_dict().items()}}, path)
    barrier()
    return path


def jsonable(values: Tensor) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 6) for v in values.detach().cpu().double().tolist()]


def summary(report: Any) -> dict[str, dict[str, float]]:
    return {
        name: {k: round(float(getattr(report[name], k)), 6) for k in ("avg", "worst", "overall")} for name in report
    }


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def batches(loader: DataLoader[Any], device: torch.device, channels_last: bool) -> Iterator[tuple[Tensor, Tensor]]:
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def shared_temporary_folder(rank: int) -> str:
    """A new temporary folder made by rank 0, its path sent to every rank (one folder for the run)."""
    path = [tempfile.mkdtemp(prefix="absld_smoke_") if rank == 0 else ""]
    if distributed():
        dist.broadcast_object_list(path, src=0)
    return path[0]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, rank, world_size = setup_device(args.device)
    temporary = args.out is None  # --smoke without --out
    threads = torch.get_num_threads()
    if args.smoke and device.type == "cpu":
        torch.set_num_threads(1)  # tiny tensors: one thread per process is fastest, and on a busy CPU by far
    try:
        if temporary:
            args.out = shared_temporary_folder(rank)
            if rank == 0:
                print(f"smoke run: writing to {args.out} (removed at the end; pass --out DIR to keep it)", flush=True)
        result = train(args, device, rank, world_size)
        barrier()  # every rank has finished writing before the folder goes
        return result
    finally:
        torch.set_num_threads(threads)
        if temporary and rank == 0 and args.out is not None:
            shutil.rmtree(args.out, ignore_errors=True)
            print(f"removed {args.out}", flush=True)
        if distributed():
            gc.collect()  # release DDP's reducer (kept in reference cycles) before its process group
            dist.destroy_process_group()


def step_options(args: argparse.Namespace) -> dict[str, Any]:
    """``methods.create``'s options: the recipe's (those the step takes), then the flags, then ``--option``."""
    options: dict[str, Any] = {}
    if args.recipe != "none":
        options |= recipe(args.method, args.recipe).options  # exactly methods.create's options, attack included
    options |= {key: getattr(args, flag) for flag, key in LOSS_FLAGS.items() if getattr(args, flag) is not None}
    options |= {"eps": args.eps, "step_size": args.attack_step_size, "steps": args.attack_steps}
    return options | dict(args.option)


def sgd(args: argparse.Namespace, student: nn.Module) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LRScheduler]:
    """SGD and its per-epoch schedule: the recipe's (parameter groups, lr_at) with the flags' values, or MultiStepLR."""
    if args.recipe == "none":
        optimizer = torch.optim.SGD(
            student.parameters(), args.lr, args.momentum, weight_decay=args.weight_decay, nesterov=args.nesterov
        )
        return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.milestones, gamma=0.1)
    r = recipe(args.method, args.recipe)
    schedule = r.schedule
    if args.milestones != [start for start, _ in r.schedule[1:]]:
        schedule = ((0, 1.0), *((start, 0.1 ** (i + 1)) for i, start in enumerate(args.milestones)))
    flags = {key: getattr(args, key) for key in ("epochs", "lr", "momentum", "nesterov", "weight_decay")}
    r = dataclasses.replace(r, schedule=schedule, **flags)
    optimizer = r.optimizer(student)
    return optimizer, r.scheduler(optimizer)


def train(args: argparse.Namespace, device: torch.device, rank: int, world_size: int) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    if args.batch_size % world_size:
        raise ValueError(f"Expected --batch-size divisible by the {world_size} ranks, but got {args.batch_size}.")
    num_classes = 100 if args.dataset == "cifar100" else 10
    method = methods.get(args.method)

    # Data: each rank its shard; the sampler reshuffles per epoch from (seed, epoch).
    if args.synthetic:
        train_set: Dataset[Any] = synthetic_cifar(args.train_samples or 50_000, num_classes, args.seed)
        test_set: Dataset[Any] = synthetic_cifar(args.test_samples or 10_000, num_classes, args.seed + 7)
    else:
        train_set, test_set = (
            cifar(args.dataset, args.data_dir, True, rank, augment=True),
            cifar(args.dataset, args.data_dir, False, rank, augment=False),
        )
        if args.test_samples:
            test_set = torch.utils.data.Subset(test_set, range(args.test_samples))
    loader_kwargs = {
        "num_workers": args.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": args.workers > 0,
    }
    options = step_options(args)
    if method.needs_validation:  # held out of the training set, without augmentation
        train_set, held_out = stratified_split(train_set, args.validation_fraction, seed=args.seed)
        if not args.synthetic:
            held_out = Subset(cifar(args.dataset, args.data_dir, True, rank, augment=False), held_out.indices)
        sampler = DistributedSampler(held_out, world_size, rank, shuffle=False)
        options["validation"] = DataLoader(held_out, 256, sampler=sampler, **loader_kwargs)
    train_sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=args.seed)
    test_sampler = DistributedSampler(test_set, world_size, rank, shuffle=False)
    train_loader = DataLoader(
        train_set, args.batch_size // world_size, sampler=train_sampler, drop_last=False, **loader_kwargs
    )
    test_loader = DataLoader(test_set, 256, sampler=test_sampler, **loader_kwargs)

    # Models: the student is built from the same seed on every rank (DDP also broadcasts it).
    torch.manual_seed(args.seed)
    student = build_student(args.student, num_classes, args.student_width)
    if args.init:
        load_weights(student, args.init)
    teacher = None
    if method.needs_teacher:
        teacher_path = args.teacher or smoke_teacher_checkpoint(args, num_classes, rank)
        teacher = load_weights(WideResNet(args.teacher_depth, args.teacher_width, num_classes), teacher_path)
    precision, channels_last, reason = resolve_speed_settings(args, device)
    if rank == 0:
        layout = "channels_last" if channels_last else "contiguous"
        print(f"precision {precision}, {layout} tensors on {device}: {reason}", flush=True)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    distiller = methods.create(
        args.method,
        student,
        num_classes=num_classes,
        teacher=teacher,
        compile=args.compile,
        precision=precision,  # autocast inside the step; warns if the device emulates the dtype
        **options,
    ).to(device, memory_format=memory_format)
    absld = isinstance(distiller.loss_fn, ABSLDLoss)  # ABSLD and RSLAD: per-class temperatures and risks
    evaluated: nn.Module = getattr(distiller, "evaluation_model", student)  # CFA's weight average, if any
    model: nn.Module = distiller
    if world_size > 1:
        # The step keeps its per-class sums and its teacher out of DDP's broadcasts.
        model = nn.parallel.DistributedDataParallel(
            distiller, device_ids=[device.index] if device.type == "cuda" else None
        )

    optimizer, scheduler = sgd(args, student)
    if absld:
        follow_optimizer_lr(distiller.loss_fn, optimizer)  # beta x 0.1 at each milestone, as the authors' script
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")
    best = BestCheckpoint("pgd")

    start_epoch = 1
    resume = str(out / "last.pt") if args.resume == "auto" else args.resume
    if resume and (args.resume != "auto" or os.path.isfile(resume)):
        state = torch.load(resume, map_location=device, weights_only=False)
        # The method's state (temperatures, partial sums, beta, ...) with the student's weights.
        distiller.load_state_dict({**state["step"], **{f"student.{k}": v for k, v in state["student"].items()}})
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if state["best"] is not None:
            from torch_absld import RobustnessReport

            saved = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
            best.update(RobustnessReport.from_dict(saved["report"]), saved["state_dict"], saved["epoch"])
        start_epoch = state["epoch"] + 1

    log_path = out / ("log.jsonl" if rank == 0 else f"log.rank{rank}.jsonl")
    write_log = rank == 0 or args.log_all_ranks
    record: dict[str, Any] = {}
    for epoch in range(start_epoch, args.epochs + 1):
        seed_epoch(args.seed, epoch, rank)
        train_sampler.set_epoch(epoch)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        terms: list[str] = []  # the output's scalar terms ("loss", "adv_kl", ...), summed with n and correct_adv
        sums = torch.zeros(0, dtype=torch.float64, device=device)
        start = time.perf_counter()
        for x, y in batches(train_loader, device, channels_last):
            step = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(step.loss).backward()
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                if not terms:
                    terms = [k for k, v in step._asdict().items() if isinstance(v, Tensor) and v.dim() == 0]
                    sums = torch.zeros(len(terms) + 2, dtype=torch.float64, device=device)
                n = torch.tensor(float(y.shape[0]), dtype=torch.float64, device=device)
                correct = (step.student_adv_logits.argmax(1) == y).sum().to(torch.float64)
                parts = torch.stack([getattr(step, k).detach() for k in terms]).to(torch.float64) * n
                sums += torch.cat([parts, n[None], correct[None]])
        if absld:
            seen = all_reduce(torch.stack([distiller.loss_fn.adv.count.sum(), distiller.loss_fn.clean.count.sum()]))
        scheduler.step()  # first, as the authors' script: at a milestone lr and beta drop together
        ended = distiller.on_epoch_end()  # ABSLD: all-reduces the risks, identical on every rank
        all_reduce(sums)
        elapsed = time.perf_counter() - start

        record = {"epoch": epoch, "lr": lr}
        record |= {("train_loss" if k == "loss" else k): float(sums[i] / sums[-2]) for i, k in enumerate(terms)}
        record |= {"train_adv_acc": float(sums[-1] / sums[-2]), "images_per_s": round(float(sums[-2]) / elapsed, 2)}
        if absld:
            record |= {
                "beta": distiller.loss_fn.adv.lr,
                "risk_samples": [int(v) for v in seen.tolist()],
                "tau_adv": jsonable(ended[0]),
                "tau_clean": jsonable(ended[1]),
                "risk_adv": jsonable(distiller.loss_fn.adv.last_risk),
                "risk_clean": jsonable(distiller.loss_fn.clean.last_risk),
            }
        elif isinstance(ended, Tensor):
            record["epoch_end"] = jsonable(ended.flatten())  # the method's per-class scales or weights
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            report = evaluate(evaluated, test_loader, num_classes, args)
            record["eval"] = summary(report)
            if best.update(report, evaluated, epoch) and rank == 0:
                best.save(str(out / "best.pt"))
        record["best_epoch"] = best.best_epoch
        if rank == 0:
            checkpoint = {
                "epoch": epoch,
                "student": student.state_dict(),
                "step": {k: v for k, v in distiller.state_dict().items() if not k.startswith("student.")},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "best": best.best_epoch,
                "args": vars(args),
            }
            save_atomic(checkpoint, out / "last.pt")
        if write_log:
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if rank == 0:
            pgd = record["eval"]["pgd"] if "eval" in record else None
            evaluation = f"PGD avg/worst {pgd['avg']:.3f}/{pgd['worst']:.3f}  " if pgd else ""
            temperatures = f"beta {record['beta']:.4g}  tau_adv [{min(record['tau_adv']):.3f}, " if absld else ""
            temperatures += f"{max(record['tau_adv']):.3f}]  " if absld else ""
            print(
                f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  lr {lr:.4g}  {temperatures}"
                f"{evaluation}{record['images_per_s']:.0f} img/s",
                flush=True,
            )
        barrier()
        if args.stop_after is not None and epoch >= args.stop_after:
            break
    return {"out": str(out), "last": record}


if __name__ == "__main__":
    main()
