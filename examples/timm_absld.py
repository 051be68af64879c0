"""ABSLD with timm: timm models, timm's optimizer factory and scheduler, beta following the lr.

Any ``timm.create_model`` name works for the student and the teacher. timm models expect
normalised inputs while the attack works in [0, 1] pixel space, so each model gets its own
``torch_absld.Normalize`` layer with the mean / std of its pretrained config. The temperature
learning rate beta follows timm's scheduler through ``follow_optimizer_lr`` (timm writes
``initial_lr`` into the optimizer's parameter groups, as PyTorch's schedulers do).

    python examples/timm_absld.py --data-dir ~/data/imagenette/train --val-dir ~/data/imagenette/val \\
        --student resnet18 --teacher resnet50 --teacher-checkpoint teacher.pth --img-size 160
    python examples/timm_absld.py --smoke          # seconds on a CPU, generated data, timm test models

It runs in one process (under ``torchrun`` with several processes it stops with a message: see
``examples/cifar_absld.py`` for multi-process training). Without ``--out``, a ``--smoke`` run
writes into a fresh temporary folder, prints its path and removes it at the end; pass
``--out DIR`` to keep the files.

``--amp auto`` (the default) trains in bf16 where the device runs it natively, in fp16 with a
GradScaler on GPUs with fp16 tensor cores only, and in float32 elsewhere; ``--channels-last
auto`` uses channels_last tensors where they pay (``torch_absld.fastest_settings``; the choice is
printed). ``--amp fp32 --channels-last off`` is the training of earlier versions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from torch_absld import ABSLDStep, Normalize, evaluate_robustness, follow_optimizer_lr, load_weights
from torch_absld.precision_flags import add_precision_flags, settings_from_flags

SMOKE = {
    "synthetic": True,
    "num_classes": 10,
    "img_size": 32,
    "train_samples": 48,
    "test_samples": 20,
    "batch_size": 16,
    "epochs": 2,
    "student": "test_resnet",
    "teacher": "test_efficientnet",
    "sched": "multistep",
    "decay_milestones": [1],
    "warmup_epochs": 0,
    "attack_steps": 2,
    "eval_pgd_steps": 2,
    "workers": 0,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="generated data, timm test models, 2 epochs")
    p.add_argument("--data-dir", default=None, help="ImageFolder with the training images")
    p.add_argument("--val-dir", default=None, help="ImageFolder with the evaluation images")
    p.add_argument("--synthetic", action="store_true", help="generated data instead of --data-dir")
    p.add_argument("--num-classes", type=int, default=None, help="default: the number of folders")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--train-samples", type=int, default=1000, help="synthetic only")
    p.add_argument("--test-samples", type=int, default=200, help="synthetic only")
    p.add_argument("--student", default="resnet18", help="timm model name")
    p.add_argument("--teacher", default="resnet50", help="timm model name")
    p.add_argument("--teacher-checkpoint", default=None, help="teacher weights (module./_orig_mod. tolerated)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--opt", default="sgd", help="timm optimizer name (create_optimizer_v2)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=2e-4)
    p.add_argument("--sched", default="cosine", help="timm scheduler name (create_scheduler_v2)")
    p.add_argument("--decay-milestones", type=int, nargs="*", default=[60, 80])
    p.add_argument("--warmup-epochs", type=int, default=5)
    p.add_argument("--beta", type=float, default=0.1, help="temperature learning rate at the base lr")
    p.add_argument("--min-temperature", type=float, default=0.5)
    p.add_argument("--max-temperature", type=float, default=5.0)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--eval-pgd-steps", type=int, default=20)
    add_precision_flags(p)  # --amp, --channels-last
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default=None,
        help="output directory (default: runs/timm_absld; with --smoke a temporary folder, removed at the end)",
    )
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    if "--smoke" in (argv if argv is not None else sys.argv[1:]):
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        parser.error(
            "this example runs in one process, but WORLD_SIZE > 1 (torchrun with several processes): every process "
            "would train its own copy. Run it with python, or see examples/cifar_absld.py for torchrun."
        )
    if args.out is None and not args.smoke:
        args.out = "runs/timm_absld"
    if not args.synthetic and args.data_dir is None:
        parser.error("--data-dir is required (or --synthetic / --smoke)")
    return args


def datasets(args: argparse.Namespace) -> tuple[Dataset[Any], Dataset[Any], int]:
    if args.synthetic:
        g = torch.Generator().manual_seed(args.seed)
        c, size = args.num_classes or 10, args.img_size
        prototypes = nn.functional.interpolate(torch.rand(c, 3, 4, 4, generator=g), size=size, mode="bilinear")

        def make(n: int) -> TensorDataset:
            y = torch.arange(n) % c
            return TensorDataset((prototypes[y] + 0.15 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1), y)

        return make(args.train_samples), make(args.test_samples), c
    from torchvision import datasets as tv_datasets
    from torchvision import transforms

    train_tf = transforms.Compose(
        [transforms.RandomResizedCrop(args.img_size), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
    )
    val_tf = transforms.Compose(
        [transforms.Resize(int(args.img_size * 1.14)), transforms.CenterCrop(args.img_size), transforms.ToTensor()]
    )
    train = tv_datasets.ImageFolder(args.data_dir, train_tf)  # ToTensor: [0, 1], normalisation is in the model
    val = tv_datasets.ImageFolder(args.val_dir or args.data_dir, val_tf)
    return train, val, args.num_classes or len(train.classes)


def with_normalization(model: nn.Module) -> nn.Module:
    """``Normalize(mean, std)`` of the model's pretrained config, then the model: inputs in [0, 1]."""
    import timm.data

    config = timm.data.resolve_model_data_config(model)
    return nn.Sequential(Normalize(config["mean"], config["std"]), model)


def resolve_speed_settings(args: argparse.Namespace, device: torch.device) -> tuple[str, bool, str]:
    """``--amp`` and ``--channels-last`` for this device: (precision, channels_last, reason)."""
    # allow_fp16: this loop scales fp16 losses with a GradScaler.
    return settings_from_flags(args.amp, args.channels_last, device, allow_fp16=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    try:
        import timm
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2
    except ImportError as error:  # pragma: no cover
        raise SystemExit('This example needs timm: pip install "torch-absld[timm]"') from error

    args = parse_args(argv)
    if args.out is not None:
        return train(args, create_optimizer_v2, create_scheduler_v2, timm)
    args.out = tempfile.mkdtemp(prefix="timm_absld_smoke_")
    print(f"smoke run: writing to {args.out} (removed at the end; pass --out DIR to keep it)", flush=True)
    try:
        return train(args, create_optimizer_v2, create_scheduler_v2, timm)
    finally:
        shutil.rmtree(args.out, ignore_errors=True)
        print(f"removed {args.out}", flush=True)


def train(args: argparse.Namespace, create_optimizer_v2: Any, create_scheduler_v2: Any, timm: Any) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    train_set, test_set, num_classes = datasets(args)
    pin = device.type == "cuda"
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, num_workers=args.workers, pin_memory=pin)
    test_loader = DataLoader(test_set, 256, num_workers=args.workers, pin_memory=pin)

    backbone = timm.create_model(args.student, pretrained=False, num_classes=num_classes)
    teacher_backbone = timm.create_model(args.teacher, pretrained=False, num_classes=num_classes)
    if args.teacher_checkpoint:
        load_weights(teacher_backbone, args.teacher_checkpoint)
    student, teacher = with_normalization(backbone), with_normalization(teacher_backbone)
    precision, channels_last, reason = resolve_speed_settings(args, device)
    print(f"precision {precision}, {'channels_last' if channels_last else 'contiguous'} tensors: {reason}", flush=True)
    distiller = ABSLDStep(
        student,
        teacher,
        num_classes,
        lr=args.beta,
        min_temperature=args.min_temperature,
        max_temperature=args.max_temperature,
        eps=args.eps,
        steps=args.attack_steps,
        compile=args.compile,
        precision=precision,  # autocast inside the step; warns if the device emulates the dtype
    )
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    distiller.to(device, memory_format=memory_format)

    # timm's factories on the backbone (its no_weight_decay() list applies); Normalize has no parameters.
    optimizer = create_optimizer_v2(
        backbone, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum
    )
    scheduler, num_epochs = create_scheduler_v2(
        optimizer,
        sched=args.sched,
        num_epochs=args.epochs,
        decay_milestones=args.decay_milestones,
        warmup_epochs=args.warmup_epochs,
    )
    follow_optimizer_lr(distiller.loss_fn, optimizer)  # timm sets "initial_lr" in every param group
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")

    record: dict[str, Any] = {}
    for epoch in range(num_epochs):
        distiller.train()
        lr = optimizer.param_groups[0]["lr"]
        total, seen, start = torch.zeros((), dtype=torch.float64, device=device), 0, time.perf_counter()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            step = distiller(x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(step.loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += step.loss.detach().double() * y.shape[0]
            seen += y.shape[0]
        scheduler.step(epoch + 1)  # first, as the authors' script: lr and beta drop together
        tau_adv, tau_clean = distiller.on_epoch_end()
        report = evaluate_robustness(
            student,
            test_loader,
            num_classes,
            attacks=("clean", "pgd"),
            eps=args.eps,
            progress=False,
            attack_overrides={"pgd": {"steps": args.eval_pgd_steps}},
        )
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "initial_lr": optimizer.param_groups[0].get("initial_lr"),
            "beta": distiller.loss_fn.adv.lr,
            "train_loss": float(total) / seen,
            "tau_adv": [round(v, 6) for v in tau_adv.tolist()],
            "tau_clean": [round(v, 6) for v in tau_clean.tolist()],
            "risk_adv": [None if math.isnan(v) else round(v, 6) for v in distiller.loss_fn.adv.last_risk.tolist()],
            "clean": {"avg": report["clean"].avg, "worst": report["clean"].worst},
            "pgd": {"avg": report["pgd"].avg, "worst": report["pgd"].worst, "overall": report["pgd"].overall},
            "images_per_s": round(seen / (time.perf_counter() - start), 2),
        }
        with (out / "log.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"epoch {epoch + 1:3d}  loss {record['train_loss']:.4f}  lr {lr:.4g}  beta {record['beta']:.4g}  "
            f"PGD avg/worst {record['pgd']['avg']:.3f}/{record['pgd']['worst']:.3f}",
            flush=True,
        )
    torch.save({"student": student.state_dict(), "loss_fn": distiller.loss_fn.state_dict()}, out / "student.pt")
    return {"out": os.fspath(out), "last": record}


if __name__ == "__main__":
    main()
