"""Evaluate a saved student checkpoint class by class, the way the ABSLD paper reports it.

    python examples/evaluate.py --checkpoint student.pt --model resnet18 --dataset cifar10
    python examples/evaluate.py --checkpoint student.pt --dataset cifar100 --attacks clean,pgd,autoattack
    python examples/evaluate.py --smoke        # generated data and a tiny model, seconds on a CPU
    torchrun --standalone --nproc-per-node 2 examples/evaluate.py --smoke   # each rank evaluates its shard

Prints Avg., Worst and Overall robustness (%) under FGSM, PGD-20, CW-inf-30 and AutoAttack
(eps 8/255) as a Markdown table laid out like the paper's, optionally the per-class table and
a JSON file. CIFAR-10/100 are downloaded by torchvision into ``--data-root`` on first use.
Inputs are in [0, 1]: a model trained on normalised images needs ``--mean`` / ``--std``
(the normalisation becomes the model's first layer, so that the attacks work in pixel space).
AutoAttack needs ``pip install "torch-absld[eval]"``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from torch_absld import Normalize, evaluate_robustness, load_weights, stratified_split

# ----------------------------------------------------------------------------------------------
# Models: the CIFAR ResNet-18 of the RSLAD / ABSLD code (3x3 stem, no max-pool), and a tiny CNN.
# ----------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs; parameter names match the common CIFAR code (kuangliu, RSLAD)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, 1)
        self.layer2 = self._make_layer(128, 2)
        self.layer3 = self._make_layer(256, 2)
        self.layer4 = self._make_layer(512, 2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        layers = []
        for s in (stride, 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def tiny_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


MODELS: dict[str, Callable[[int], nn.Module]] = {"resnet18": ResNet18, "tiny": tiny_cnn}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def build_model(
    name: str, num_classes: int, checkpoint: str, mean: list[float] | None, std: list[float] | None
) -> nn.Module:
    # load_weights accepts bare state dicts and {"state_dict": ...} / "module."-prefixed checkpoints.
    model = load_weights(MODELS[name](num_classes), checkpoint)
    if mean is not None or std is not None:
        model = nn.Sequential(Normalize(mean or [0.0, 0.0, 0.0], std or [1.0, 1.0, 1.0]), model)
    return model


def cifar_test_set(dataset: str, root: str) -> Any:
    try:
        import torchvision
        from torchvision import transforms
    except ImportError as error:
        raise SystemExit("This example needs torchvision: pip install torchvision") from error
    cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
    return cls(root, train=False, download=True, transform=transforms.ToTensor())


# ----------------------------------------------------------------------------------------------
# --smoke: a tiny CNN fitted for a moment on generated 3x8x8 images, saved and evaluated from disk.
# ----------------------------------------------------------------------------------------------


def smoke_setup(directory: str, num_classes: int = 10, n: int = 20) -> tuple[str, TensorDataset]:
    g = torch.Generator().manual_seed(0)
    target = torch.arange(n) % num_classes
    patterns = 0.2 + 0.6 * torch.rand(num_classes, 3, 8, 8, generator=g)
    images = (patterns[target] + 0.2 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    model = tiny_cnn(num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        loss = F.cross_entropy(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = str(Path(directory) / "tiny.pt")
    torch.save(model.state_dict(), path)
    return path, TensorDataset(images, target)


def setup_ranks(smoke: bool) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; under torchrun, the process group is started here."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, 0
    use_cuda = torch.cuda.is_available() and not smoke
    dist.init_process_group("nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return dist.get_rank(), world_size, local_rank


def parse_eps(text: str) -> float:
    return float(Fraction(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="path of the student's state dict (torch.save)")
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    parser.add_argument("--dataset", choices=sorted(NUM_CLASSES), default="cifar10")
    parser.add_argument("--data-root", default="./data")
    parser.add_argument("--attacks", default="clean,fgsm,pgd,cw,autoattack", help="comma-separated attack names")
    parser.add_argument("--eps", type=parse_eps, default=Fraction(8, 255), help="L-inf radius, e.g. 8/255")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None, help="evaluate a class-stratified subset of about N images")
    parser.add_argument(
        "--worst-fraction", type=float, default=None, help="default: 0.1 for CIFAR-100, else the worst class"
    )
    parser.add_argument("--mean", type=float, nargs=3, default=None, help="per-channel mean the model was trained with")
    parser.add_argument("--std", type=float, nargs=3, default=None, help="per-channel std the model was trained with")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="row label of the table (default: the model name)")
    parser.add_argument("--per-class", action="store_true", help="also print the per-class table")
    parser.add_argument("--json", default=None, help="write the report as JSON to this path")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="generated data and a tiny model (CI)")
    args = parser.parse_args(argv)
    rank, world_size, local_rank = setup_ranks(args.smoke)
    try:
        run(parser, args, rank, world_size, local_rank)
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, rank: int, world_size: int, local_rank: int) -> None:
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    class_names = None
    # Under torchrun every rank makes the same smoke model and data (seeded), in a folder of its own.
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            torch.set_num_threads(1)  # tiny tensors: one thread is the fastest on a shared CPU
            args.checkpoint, dataset = smoke_setup(tmp)
            args.model, num_classes, device, progress = "tiny", 10, "cpu", False
        else:
            if args.checkpoint is None:
                parser.error("--checkpoint is required (or use --smoke)")
            num_classes, device, progress = NUM_CLASSES[args.dataset], args.device, not args.no_progress
            if world_size > 1 and device == "cuda":
                device = f"cuda:{local_rank}"
            dataset = cifar_test_set(args.dataset, args.data_root)
            class_names = CLASS_NAMES.get(args.dataset)
        if args.limit is not None and args.limit < len(dataset):
            # A class-stratified subset, so that every class keeps samples (Worst needs all of them).
            _, dataset = stratified_split(dataset, args.limit / len(dataset), seed=args.seed)
        model = build_model(args.model, num_classes, args.checkpoint, args.mean, args.std).to(device)
        # Each rank its shard; evaluate_robustness sums the counts of all ranks (and leaves out the padding).
        sampler = DistributedSampler(dataset, world_size, rank, shuffle=False) if world_size > 1 else None
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=0 if args.smoke else 2)
        start = time.perf_counter()
        report = evaluate_robustness(
            model,
            loader,
            num_classes,
            attacks=attacks,
            eps=float(args.eps),
            device=device,
            worst_fraction=args.worst_fraction,
            progress=progress,
            seed=args.seed,
        )
    if rank != 0:
        return
    print(report.to_markdown(name=args.name or args.model, per_class=args.per_class, class_names=class_names))
    print(f"\n{report}\n({report.num_samples} images, {time.perf_counter() - start:.1f} s on {device})")
    if args.json:
        Path(args.json).write_text(
            json.dumps({**report.to_dict(), "checkpoint": args.checkpoint if not args.smoke else None}, indent=2)
        )


if __name__ == "__main__":
    main()
