"""Which ingredient of the authors' temperature coupling carries ABSLD's worst-class gain?

Ablations of ABSLD's temperatures on scikit-learn's digits, with the recipe of
``torch-absld demo`` (MLP student, PGD-AT CNN teacher, eps 0.1): for every seed a fresh split
and teacher, then one student per variant from the same initial weights, data order and attack
noise, evaluated with PGD-20 and APGD-CE + APGD-T (or the standard AutoAttack) at the best and
the last epoch. Each (seed, variant) result is cached as JSON in ``--out``; ``--report`` prints
the paired differences to RSLAD with 95% intervals. The numbers of
``docs/paper-vs-script.md`` come from::

    python experiments/temperature_modes.py --seeds 0-15 --variants all
    python experiments/temperature_modes.py --seeds 0-7 \
        --variants rslad@0.2,separate@0.2,product@0.2,rslad@0.4,separate@0.4,product@0.4
    python experiments/temperature_modes.py --report

``name@s`` multiplies the teacher's logits by ``s`` (a less confident teacher). Needs the
``demo`` extra. Seeds below 100 are for exploring; the claims in the docs are checked on other
seeds with ``torch-absld demo``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from torch_absld import ABSLDLoss, BestCheckpoint, KLPGDAttack, follow_optimizer_lr, soft_label_kl, soft_labels
from torch_absld.demo.config import DemoConfig
from torch_absld.demo.data import StudentMLP, TeacherCNN, digits_dataset
from torch_absld.demo.stats import paired_comparison
from torch_absld.demo.train import evaluate, teacher_statistics, train_teacher
from torch_absld.evaluation import stratified_split

WIDE = {"min_temperature": 0.25, "max_temperature": 25.0}
#: name -> (ABSLDLoss options, what the variant changes). Extra keys: see `VariantLoss`.
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "rslad": ({"adapt": "none"}, "temperatures frozen at 1"),
    "separate": ({"coupling": "separate"}, "paper Eq. 12"),
    "product": ({"coupling": "product"}, "authors' script (the default)"),
    "separate_wide": ({"coupling": "separate", **WIDE}, "Eq. 12, clamp [0.25, 25]"),
    "separate_2x": ({"coupling": "separate", "lr": 0.2}, "Eq. 12, beta 0.2"),
    "separate_2x_wide": ({"coupling": "separate", "lr": 0.2, **WIDE}, "Eq. 12, beta 0.2, clamp [0.25, 25]"),
    "separate_log": ({"coupling": "separate", "lr": 0.2, "log_update": True, **WIDE}, "Eq. 12, log-space step"),
    "product_half": (
        {"coupling": "product", "lr": 0.05, "min_temperature": 0.5**0.5, "max_temperature": 5**0.5},
        "product, beta 0.05, product clamped to [0.5, 5]",
    ),
    "product_attack_sep": ({"coupling": "product", "attack": "adv"}, "product loss, attack with tau_adv"),
    "separate_attack_prod": ({"coupling": "separate", "attack": "product"}, "Eq. 12 loss, attack with product"),
    "product_clean1": ({"coupling": "product", "clean_one": True}, "product, clean term at tau = 1"),
    "shared_adv": ({"coupling": "separate", "adapt": "adv", "shared": True}, "tau_adv in both terms"),
    "shared_adv_2x_wide": (
        {"coupling": "separate", "adapt": "adv", "shared": True, "lr": 0.2, **WIDE},
        "tau_adv in both terms, beta 0.2, clamp [0.25, 25]",
    ),
    "adv_only": ({"coupling": "separate", "adapt": "adv"}, "Eq. 12, only tau_adv adapts (ABSLD_adv)"),
}


class VariantLoss(ABSLDLoss):
    """ABSLDLoss with the research knobs of the ablations.

    Args:
        attack: ``"adv"`` or ``"product"``: the attack's soft labels use that temperature
            instead of the loss's adversarial one.
        shared: both terms use ``tau_adv``.
        clean_one: the clean term uses temperature 1.
        log_update: Eq. 11 as a step in log space, ``tau * exp(-beta * gap / max|gap|)``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        attack: str | None = None,
        shared: bool = False,
        clean_one: bool = False,
        log_update: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(num_classes, **options)
        self.attack_temperature, self.shared, self.clean_one, self.log_update = attack, shared, clean_one, log_update

    def effective(self, target: Tensor, kind: str) -> Tensor:
        tau_adv, tau_clean = self.adv.temperatures[target], self.clean.temperatures[target]
        if self.shared:
            return tau_adv
        if kind == "clean" and self.clean_one:
            return torch.ones_like(tau_adv)
        if self.coupling == "product":
            return tau_adv * tau_clean
        return tau_adv if kind == "adv" else tau_clean

    def soft_labels(self, teacher_logits: Tensor, target: Tensor, kind: str = "adv", **_: Any) -> Tensor:  # type: ignore[override]
        if self.attack_temperature == "adv":
            return soft_labels(teacher_logits, self.adv.temperatures[target])
        if self.attack_temperature == "product":
            return soft_labels(teacher_logits, self.adv.temperatures[target] * self.clean.temperatures[target])
        return soft_labels(teacher_logits, self.effective(target, kind))

    def forward(self, s_adv: Tensor, s_clean: Tensor, teacher: Tensor, target: Tensor) -> Tensor:
        adv = soft_label_kl(s_adv, teacher, self.effective(target, "adv"))
        clean = soft_label_kl(s_clean, teacher, self.effective(target, "clean"))
        if self.training:
            self.record(s_adv, s_clean, target)
        return self.combine(adv, clean)

    def step(self) -> tuple[Tensor, Tensor]:
        if not self.log_update:
            return super().step()
        for controller in (self.adv, self.clean):
            before = controller.temperatures.clone()
            controller.step()  # syncs the risks into last_risk and resets the sums
            risk = controller.last_risk
            present = ~torch.isnan(risk)
            controller.temperatures.copy_(before)
            if controller.lr > 0 and bool(present.any()):
                gap = torch.where(present, risk - risk[present].mean(), torch.zeros_like(risk))
                largest = gap.abs().max()
                if float(largest) > 1e-4 * abs(float(risk[present].mean())):
                    new = before.double() * torch.exp(-controller.lr * gap / largest)
                    controller.temperatures.copy_(new.clamp(controller.min_temperature, controller.max_temperature))
        return self.adv.temperatures, self.clean.temperatures


class Scaled(nn.Module):
    """The teacher with its logits multiplied by ``scale`` (< 1: a less confident teacher)."""

    def __init__(self, teacher: nn.Module, scale: float) -> None:
        super().__init__()
        self.teacher, self.scale = teacher, scale

    def forward(self, x: Tensor) -> Tensor:
        return self.teacher(x) * self.scale


def _split(seed: int) -> tuple[Dataset[Any], Dataset[Any]]:
    return stratified_split(digits_dataset(), 0.5, seed=seed)


def _scores(report: Any) -> dict[str, Any]:
    return {a: {"avg": report[a].avg, "worst": report[a].worst, "per_class": report[a].per_class} for a in report}


def teacher_job(seed: int, out: Path, config: DemoConfig) -> None:
    torch.set_num_threads(1)
    path = out / "teachers" / f"{seed}.pt"
    if path.exists():
        return
    train, test = _split(seed)
    torch.manual_seed(seed)
    teacher = TeacherCNN((1, 8, 8), 10)
    train_teacher(config, teacher, train, 0.1, seed)
    stats = teacher_statistics(teacher, DataLoader(train, batch_size=512), 10, torch.device("cpu"))
    stats["test"] = _scores(evaluate(teacher, DataLoader(test, batch_size=512), 10, 0.1, attacks=("clean", "pgd"))[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": teacher.state_dict(), "stats": stats}, path)


def _final(student: nn.Module, loader: DataLoader[Any], autoattack: str) -> dict[str, Any]:
    scores = _scores(evaluate(student, loader, 10, 0.1, attacks=("clean", "pgd", "cw"), autoattack=autoattack)[0])
    if "autoattack" in scores:
        scores["aa"] = scores.pop("autoattack")
    return scores


def student_job(seed: int, variant: str, out: Path, config: DemoConfig, autoattack: str) -> None:
    torch.set_num_threads(1)
    path = out / "runs" / f"{seed}_{variant}.json"
    if path.exists():
        return
    start = time.time()
    train, test = _split(seed)
    test_loader = DataLoader(test, batch_size=512)
    teacher: nn.Module = TeacherCNN((1, 8, 8), 10)
    teacher.load_state_dict(torch.load(out / "teachers" / f"{seed}.pt")["state"])
    name, _, scale = variant.partition("@")
    if scale:
        teacher = Scaled(teacher, float(scale))
    teacher.eval().requires_grad_(False)
    options = {"lr": config.beta, **VARIANTS[name][0]}
    torch.manual_seed(seed + 10_000)
    student = StudentMLP((1, 8, 8), 10, config.student_hidden)
    order = torch.Generator().manual_seed(seed + 20_000)
    loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, generator=order)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.student_lr, weight_decay=config.student_weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.student_milestones, gamma=0.1)
    loss_fn = VariantLoss(10, **options)
    follow_optimizer_lr(loss_fn, optimizer)
    noise = torch.Generator().manual_seed(seed + 30_000)
    attack = KLPGDAttack(student, eps=0.1, step_size=0.025, steps=config.attack_steps, generator=noise)
    best = BestCheckpoint("pgd")
    history: dict[str, list[Any]] = {k: [] for k in ("tau_adv", "tau_clean", "tau_eff", "pgd_avg", "pgd_worst")}
    for epoch in range(config.epochs):
        student.train()
        loss_fn.train()
        for x, y in loader:
            with torch.no_grad():
                teacher_logits = teacher(x)
            x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, "adv"))
            loss = loss_fn(student(x_adv), student(x), teacher_logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()  # first: at a milestone the lr and beta drop together, as the authors' script
        tau_adv, tau_clean = loss_fn.step()
        history["tau_adv"].append(tau_adv.tolist())
        history["tau_clean"].append(tau_clean.tolist())
        history["tau_eff"].append(loss_fn.effective(torch.arange(10), "adv").tolist())
        report, _ = evaluate(student, test_loader, 10, 0.1, attacks=("pgd",))
        best.update(report, student, epoch)
        history["pgd_avg"].append(report["pgd"].avg)
        history["pgd_worst"].append(report["pgd"].worst)
    last = _final(student, test_loader, autoattack)
    student.load_state_dict(best.state_dict)
    result = {
        "seed": seed,
        "variant": variant,
        "best_epoch": best.best_epoch,
        "last": last,
        "best": _final(student, test_loader, autoattack),
        "history": history,
        "seconds": time.time() - start,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))


COLUMNS = (
    ("last", "pgd", "worst", "Δ worst PGD-20 last"),
    ("last", "aa", "worst", "Δ worst AA last"),
    ("last", "aa", "avg", "Δ avg AA last"),
    ("last", "aa", "overall", "Δ overall AA last"),
    ("best", "pgd", "worst", "Δ worst PGD-20 best"),
    ("best", "aa", "worst", "Δ worst AA best"),
)


def _metric(scores: dict[str, Any], metric: str) -> float:
    if metric == "overall":
        return (scores["avg"] + scores["worst"]) / 2
    return float(scores[metric])


def report(out: Path) -> str:
    """Paired differences of every variant to RSLAD (with the same teacher scale), 95% intervals."""
    runs = {}
    for path in (out / "runs").glob("*.json"):
        result = json.loads(path.read_text())
        runs[(result["seed"], result["variant"])] = result
    lines = ["| variant | n | " + " | ".join(c[3] for c in COLUMNS) + " | median τ |"]
    lines.append("| --- | ---: |" + " ---: |" * (len(COLUMNS) + 1))
    for variant in sorted({v for _, v in runs}):
        name, _, scale = variant.partition("@")
        base = "rslad" + (f"@{scale}" if scale else "")
        seeds = sorted(s for s, v in runs if v == variant and (s, base) in runs)
        if name == "rslad" or not seeds:
            continue
        cells = []
        for checkpoint, attack, metric, _ in COLUMNS:
            if attack not in runs[(seeds[0], variant)][checkpoint]:
                cells.append("n/a")
                continue
            diffs = [
                _metric(runs[(s, variant)][checkpoint][attack], metric)
                - _metric(runs[(s, base)][checkpoint][attack], metric)
                for s in seeds
            ]
            c = paired_comparison(diffs)
            interval = f" [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]" if len(seeds) > 1 else ""
            cells.append(f"{100 * c['mean']:+.1f}{interval}")
        median = statistics.fmean(statistics.median(runs[(s, variant)]["history"]["tau_eff"][-1]) for s in seeds)
        lines.append(f"| {variant} | {len(seeds)} | " + " | ".join(cells) + f" | {median:.2f} |")
    return "\n".join(lines)


def plot(out: Path, path: Path, variants: list[str], seed: int = 0) -> None:
    """Per-class effective temperature over the epochs of ``seed`` for each of ``variants`` (log scale)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.6), sharey=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, variant in zip(axes[0], variants):
        history = json.loads((out / "runs" / f"{seed}_{variant}.json").read_text())["history"]["tau_eff"]
        for c in range(len(history[0])):
            ax.plot(range(1, len(history) + 1), [row[c] for row in history], color=cmap(c % 10), label=str(c))
        ax.set_yscale("log")
        ax.set_title(f"{variant}: {VARIANTS[variant.partition('@')[0]][1]}", fontsize="small")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"effective teacher temperature (seed {seed})")
    axes[0][-1].legend(title="class", ncol=2, fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _seeds(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-15", help="a range, e.g. 0-15")
    parser.add_argument("--variants", default="rslad,separate,product", help=f"'all' or from {', '.join(VARIANTS)}")
    parser.add_argument("--out", default="temperature-modes", help="cache of results")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--autoattack", default="apgd", choices=("apgd", "standard", "none"))
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--report", action="store_true", help="print the table of the cached results and stop")
    parser.add_argument("--plot", default=None, metavar="PNG", help="plot the temperatures of --variants and stop")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.report:
        print(report(out))
        return
    variants = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    if args.plot:
        plot(out, Path(args.plot), variants)
        return
    unknown = [v for v in variants if v.partition("@")[0] not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}")
    seeds = _seeds(args.seeds)
    config = DemoConfig(progress=False, epochs=args.epochs, teacher_epochs=args.teacher_epochs)
    spawn = multiprocessing.get_context("spawn")
    started = time.time()
    with ProcessPoolExecutor(args.workers, mp_context=spawn) as pool:
        for future in as_completed([pool.submit(teacher_job, s, out, config) for s in seeds]):
            future.result()
        jobs = [pool.submit(student_job, s, v, out, config, args.autoattack) for v in variants for s in seeds]
        for done, future in enumerate(as_completed(jobs), 1):
            future.result()
            print(f"{done}/{len(jobs)} students, {time.time() - started:.0f} s", flush=True)
    print(report(out))


if __name__ == "__main__":
    main()
