"""The demo's report: mean tables over seeds, paired differences, a plain verdict, report.md and results.json."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_markdown", "summarize", "terminal_summary", "write_json"]

ATTACK_NAMES = {"clean": "Clean", "fgsm": "FGSM", "pgd": "PGD-20", "cw": "CW∞"}
CHECKPOINTS = {"best": "best checkpoint", "last": "last epoch"}
BASELINE = "RSLAD"


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std}


def _paired(differences: list[float]) -> dict[str, Any]:
    tolerance = 1e-9
    return {
        "per_seed": differences,
        **_mean_std(differences),
        "wins": sum(d > tolerance for d in differences),
        "ties": sum(abs(d) <= tolerance for d in differences),
        "losses": sum(d < -tolerance for d in differences),
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Means and standard deviations over seeds, and the paired differences to RSLAD.

    ``summary[checkpoint][method][attack]`` holds ``avg``, ``worst``, ``overall`` (each
    ``{"mean", "std"}``) and the mean ``per_class`` accuracy; ``paired[checkpoint][method]``
    holds, for PGD-20 ``avg`` and ``worst``, the per-seed differences method - RSLAD, their
    mean and standard deviation, and the wins, ties and losses.
    """
    runs = results["runs"]
    summary: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for checkpoint in CHECKPOINTS:
        summary[checkpoint] = {}
        paired[checkpoint] = {}
        for method in results["methods"]:
            scores = [run["methods"][method]["checkpoints"][checkpoint] for run in runs]
            summary[checkpoint][method] = {
                attack: {
                    **{
                        metric: _mean_std([s[attack][metric] for s in scores]) for metric in ("avg", "worst", "overall")
                    },
                    "per_class": [
                        statistics.fmean(values) for values in zip(*(s[attack]["per_class"] for s in scores))
                    ],
                }
                for attack in scores[0]
            }
            if method != BASELINE:
                base = [run["methods"][BASELINE]["checkpoints"][checkpoint]["pgd"] for run in runs]
                ours = [s["pgd"] for s in scores]
                paired[checkpoint][method] = {
                    metric: _paired([o[metric] - b[metric] for o, b in zip(ours, base)]) for metric in ("avg", "worst")
                }
    return {"summary": summary, "paired": paired, "verdict": _verdict(paired, len(runs))}


def _points(value: float, sign: bool = True) -> str:
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{number} {noun if number == 1 else plural}"


def _processes(results: dict[str, Any]) -> str:
    threads = _count(results["threads"], "thread")
    workers = results.get("workers", 1)
    return threads if workers == 1 else f"{workers} processes of {threads}"


def _verdict(paired: dict[str, Any], seeds: int) -> list[str]:
    lines = []
    for method in paired["best"]:
        for checkpoint, label in CHECKPOINTS.items():
            worst = paired[checkpoint][method]["worst"]
            avg = paired[checkpoint][method]["avg"]
            wins, ties, losses = worst["wins"], worst["ties"], worst["losses"]
            counts = (
                f"{_count(wins, 'win')}, {_count(ties, 'tie')}, {_count(losses, 'loss')} over {_count(seeds, 'seed')}"
            )
            change = (
                f"worst-class PGD-20 accuracy {_points(worst['mean'])} points, average PGD-20 accuracy "
                f"{_points(avg['mean'])} points" + (" (means over the seeds)" if seeds > 1 else "")
            )
            head = f"At the {label}, {method}"
            if wins == seeds:
                head += " beat RSLAD on the worst class" + (" in every seed" if seeds > 1 else "")
            elif wins > losses and worst["mean"] > 0:
                head += f" beat RSLAD on the worst class in {wins} of {seeds} seeds, not in the others"
            else:
                head += " did NOT beat RSLAD on the worst class in this run"
            lines.append(f"{head} ({counts}): {change}.")
    if seeds == 1:
        lines.append(
            "A single seed is noisy (the worst class of a small test split moves by several points between "
            "seeds): run 3 or more."
        )
    return lines


def _cell(stats: dict[str, float], seeds: int) -> str:
    text = _points(stats["mean"], sign=False)
    return text if seeds == 1 else f"{text} ± {_points(stats['std'], sign=False)}"


def _method_table(summary: dict[str, Any], seeds: int) -> list[str]:
    lines = ["| Method | Attack | Avg. | Worst | Overall |", "| --- | --- | ---: | ---: | ---: |"]
    for method, attacks in summary.items():
        for index, (attack, stats) in enumerate(attacks.items()):
            name = method if index == 0 else ""
            cells = " | ".join(_cell(stats[m], seeds) for m in ("avg", "worst", "overall"))
            lines.append(f"| {name} | {ATTACK_NAMES.get(attack, attack)} | {cells} |")
    return lines


def _paired_table(results: dict[str, Any], paired: dict[str, Any], method: str) -> list[str]:
    lines = [
        "| Seed | Δ Avg. (best) | Δ Worst (best) | Δ Avg. (last) | Δ Worst (last) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    columns = [paired[c][method][m] for c in CHECKPOINTS for m in ("avg", "worst")]
    for index, run in enumerate(results["runs"]):
        lines.append(f"| {run['seed']} | " + " | ".join(_points(col["per_seed"][index]) for col in columns) + " |")
    if len(results["runs"]) > 1:
        lines.append(
            "| mean ± std | " + " | ".join(f"{_points(c['mean'])} ± {_points(c['std'], False)}" for c in columns) + " |"
        )
    lines.append(
        "| wins / ties / losses | " + " | ".join(f"{c['wins']} / {c['ties']} / {c['losses']}" for c in columns) + " |"
    )
    return lines


def _per_class_table(summary: dict[str, Any], num_classes: int) -> list[str]:
    lines = ["| Method | " + " | ".join(str(c) for c in range(num_classes)) + " |", "| --- |" + " ---: |" * num_classes]
    for method, attacks in summary.items():
        lines.append(f"| {method} | " + " | ".join(_points(v, sign=False) for v in attacks["pgd"]["per_class"]) + " |")
    return lines


def _temperature_table(results: dict[str, Any], method: str, num_classes: int) -> list[str]:
    lines = ["| | " + " | ".join(str(c) for c in range(num_classes)) + " |", "| --- |" + " ---: |" * num_classes]
    finals = {
        key: [run["methods"][method]["history"][key][-1] for run in results["runs"]] for key in ("tau_adv", "tau_clean")
    }
    rows = {"τ_adv": finals["tau_adv"], "τ_clean": finals["tau_clean"]}
    if method == "ABSLD-script":
        products = [[a * c for a, c in zip(*pair)] for pair in zip(finals["tau_adv"], finals["tau_clean"])]
        rows["τ_adv · τ_clean (used in both terms)"] = products
    for label, per_seed in rows.items():
        means = [statistics.fmean(values) for values in zip(*per_seed)]
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in means) + " |")
    return lines


def _setup(results: dict[str, Any]) -> list[str]:
    config, data, teacher = results["config"], results["dataset"], results["teacher"]["scores"]
    eps = results["eps"]
    milestones = ", ".join(str(m) for m in _milestones(config))
    hidden = "-".join(str(h) for h in config["student_hidden"])
    coupled = ', ABSLD-script = `coupling="product"` (the authors\' script)' if config["compare_coupled"] else ""
    return [
        f"- **Data**: {data['description']}: {data['train_size']} training and {data['test_size']} test images, "
        f"pixels in [0, 1]. L∞ radius eps = {eps:.4g} for training and evaluation.",
        f"- **Teacher** (one for the whole run, seed {config['seed']}): CNN conv3x3(32), conv3x3(64), max-pool, "
        f"FC 256; PGD-AT ({config['teacher_attack_steps']} steps of eps/4, uniform start, eps ramped up over the "
        f"first {100 * config['eps_ramp']:.0f}% of epochs), SGD lr {config['teacher_lr']:g}, momentum "
        f"{config['teacher_momentum']:g}, {config['teacher_epochs']} epochs. Test accuracy: clean "
        f"{_points(teacher['clean']['avg'], False)}%, PGD-20 {_points(teacher['pgd']['avg'], False)}% "
        f"(worst class {_points(teacher['pgd']['worst'], False)}%).",
        f"- **Students**: MLP with hidden layers {hidden} and {data['num_classes']} outputs, "
        f"Adam lr {config['student_lr']:g}, weight decay "
        f"{config['student_weight_decay']:g}, batch {config['batch_size']}, {config['epochs']} epochs, lr x0.1 "
        f"after epochs {milestones}; KL-PGD ({config['attack_steps']} steps of eps/4, Gaussian start) against "
        f'the teacher\'s soft labels. RSLAD = `ABSLDLoss(C, adapt="none")` (temperatures frozen at 1), ABSLD = '
        f'`ABSLDLoss(C, adapt="both")`{coupled}; beta {config["beta"]:g} following the lr, temperatures in '
        f"[{config['min_temperature']:g}, {config['max_temperature']:g}]. For each seed every student starts "
        "from the same weights and sees the same data order and attack noise: the methods differ only in "
        "the temperatures.",
        "- **Evaluation**: `torch_absld.evaluate_robustness` on the test split: clean, FGSM, PGD-20 and CW∞-30 "
        "(steps of eps/4). Avg. = accuracy over all test images, Worst = the lowest class, Overall = (Avg. + "
        "Worst) / 2, in %. The *best checkpoint* is the epoch with the best PGD-20 Overall on the test split, "
        "as the paper selects (an optimistic choice); the *last epoch* involves no selection.",
    ]


def _milestones(config: dict[str, Any]) -> list[int]:
    return sorted({max(1, round(m * config["epochs"])) for m in config["milestones"]})


def render_markdown(results: dict[str, Any], plots: Sequence[str]) -> str:
    """The full ``report.md``; ``results`` must already hold :func:`summarize`'s keys."""
    seeds = len(results["runs"])
    num_classes = results["dataset"]["num_classes"]
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    out = [
        f"# torch-absld demo: ABSLD vs RSLAD on {results['dataset']['name']}",
        "",
        f"{results['date']} · {results['machine']} · {_processes(results)} on "
        f"{results['config']['device']} · torch {results['torch_version']}, torch-absld "
        f"{results['torch_absld_version']} · {_count(seeds, 'seed')} · {results['seconds']:.0f} s",
        "",
        "## Verdict",
        "",
        *(f"- {line}" for line in results["verdict"]),
        "",
        "## What was measured",
        "",
        *_setup(results),
    ]
    for checkpoint, label in CHECKPOINTS.items():
        out += ["", f"## Robustness at the {label} ({spread}, %)", ""]
        out += _method_table(results["summary"][checkpoint], seeds)
    for method in results["methods"]:
        if method == BASELINE:
            continue
        out += ["", f"## Paired differences {method} - RSLAD, PGD-20 (points)", ""]
        out += _paired_table(results, results["paired"], method)
    out += ["", "## Per-class PGD-20 accuracy at the best checkpoint (mean over seeds, %)", ""]
    out += _per_class_table(results["summary"]["best"], num_classes)
    for method in results["methods"]:
        if method != BASELINE:
            out += ["", f"## Final temperatures of {method} (mean over seeds)", ""]
            out += _temperature_table(results, method, num_classes)
    if plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    out += ["", "## Each seed", ""]
    for run in results["runs"]:
        for checkpoint, label in CHECKPOINTS.items():
            epochs = ", ".join(f"{m} {run['methods'][m]['best_epoch'] + 1}" for m in results["methods"])
            detail = f" (epoch: {epochs})" if checkpoint == "best" else ""
            out += [f"Seed {run['seed']}, {label}{detail}:", "", run["tables"][checkpoint], ""]
    return "\n".join(out)


def terminal_summary(results: dict[str, Any]) -> str:
    """A short text for the terminal: the best-checkpoint table and the verdict."""
    seeds = len(results["runs"])
    lines = [
        f"Robustness at the best checkpoint ({f'mean ± std over {seeds} seeds' if seeds > 1 else '1 seed'}, %):",
        *_method_table(results["summary"]["best"], seeds),
    ]
    return "\n".join([*lines, "", *results["verdict"]])


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` as strict JSON (NaN, e.g. the risk of a class unseen in an epoch, becomes null)."""
    path.write_text(json.dumps(_finite(results), indent=1, allow_nan=False) + "\n", encoding="utf-8")
