"""The demo's report: tables over seeds, paired comparisons with confidence intervals, a plain verdict."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .methods import METHODS
from .stats import mean_interval, paired_comparison

__all__ = ["attack_names", "render_markdown", "summarize", "terminal_summary", "write_json"]

CHECKPOINTS = {"best": "best checkpoint", "last": "last epoch"}
METRICS = ("avg", "worst", "overall", "nsd")
METRIC_NAMES = {"avg": "Avg.", "worst": "Worst", "overall": "Overall", "nsd": "NSD"}
#: Attacks whose paired comparisons the verdict states.
VERDICT_ATTACKS = ("pgd", "autoattack")


def attack_names(results: dict[str, Any]) -> dict[str, str]:
    """Column names of the attacks: AutoAttack is named after what ran (``"apgd"``: its first two attacks)."""
    autoattack = "AA" if results["config"]["autoattack"] == "standard" else "APGD-CE+T"
    return {"clean": "Clean", "fgsm": "FGSM", "pgd": "PGD-20", "cw": "CW∞-30", "autoattack": autoattack}


def _scores(results: dict[str, Any], method: str, checkpoint: str) -> list[dict[str, Any]]:
    return [run["methods"][method]["checkpoints"][checkpoint] for run in results["runs"]]


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Means over seeds and the paired comparisons of every method with the baseline (the first method).

    ``summary[checkpoint][method][attack]`` holds ``avg``, ``worst``, ``overall`` and ``nsd``
    (each a :class:`~torch_absld.demo.stats.MeanInterval` as a dict) and the mean
    ``per_class`` accuracy; ``paired[checkpoint][method][attack][metric]`` holds the
    :class:`~torch_absld.demo.stats.PairedComparison` (method minus baseline, per seed) as a dict.
    """
    baseline, *others = results["methods"]
    summary: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for checkpoint in CHECKPOINTS:
        summary[checkpoint] = {}
        for method in results["methods"]:
            scores = _scores(results, method, checkpoint)
            summary[checkpoint][method] = {
                attack: {
                    **{metric: mean_interval([s[attack][metric] for s in scores]).to_dict() for metric in METRICS},
                    "per_class": [statistics.fmean(v) for v in zip(*(s[attack]["per_class"] for s in scores))],
                }
                for attack in scores[0]
            }
        base = _scores(results, baseline, checkpoint)
        paired[checkpoint] = {
            method: {
                attack: {
                    metric: paired_comparison(
                        [
                            o[attack][metric] - b[attack][metric]
                            for o, b in zip(_scores(results, method, checkpoint), base)
                        ]
                    ).to_dict()
                    for metric in METRICS
                }
                for attack in base[0]
            }
            for method in others
        }
    return {"summary": summary, "paired": paired, "verdict": _verdict(results, paired)}


def _points(value: float, sign: bool = True) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _interval(comparison: dict[str, Any]) -> str:
    if comparison["n"] < 2:
        return _points(comparison["mean"])
    return f"{_points(comparison['mean'])} [{_points(comparison['low'])}, {_points(comparison['high'])}]"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 else f"{value:.2f}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun if number == 1 else noun + 's'}"


def _judgement(worst: dict[str, Any]) -> str:
    if worst["n"] < 2:
        return "one seed gives no interval"
    if worst["low"] > 0:
        return "a clear gain (the 95% interval lies above zero)"
    if worst["high"] < 0:
        return "a clear LOSS (the 95% interval lies below zero)"
    return "no clear effect (the 95% interval contains zero)"


def _verdict(results: dict[str, Any], paired: dict[str, Any]) -> list[str]:
    names = attack_names(results)
    baseline = results["methods"][0]
    seeds = len(results["runs"])
    lines = []
    for method in results["methods"][1:]:
        for attack in (a for a in VERDICT_ATTACKS if a in paired["last"][method]):
            last, best = paired["last"][method][attack], paired["best"][method][attack]
            lines.append(
                f"{method} vs {baseline} under {names[attack]}: worst class {_interval(last['worst'])} points at "
                f"the last epoch ({last['worst']['wins']} of {seeds} seeds better, sign test p = "
                f"{_p(last['worst']['sign_p'])}), {_interval(best['worst'])} at the best checkpoint; average "
                f"{_interval(last['avg'])} / {_interval(best['avg'])}, overall {_interval(last['overall'])} / "
                f"{_interval(best['overall'])} (last / best). Worst class at the last epoch: "
                f"{_judgement(last['worst'])}; at the best checkpoint: {_judgement(best['worst'])}."
            )
    lines.append(
        f"Means over {_count(seeds, 'seed')} of the per-seed differences, with 95% Student-t intervals; each seed "
        "draws its own split and teacher. The same command on the same machine gives the same numbers; floating "
        "point differs across CPUs, so another machine gives other numbers, which should fall within these intervals."
    )
    return lines


def _cell(stats: dict[str, Any], seeds: int, scale: float = 100.0) -> str:
    text = f"{scale * stats['mean']:.1f}" if scale == 100 else f"{stats['mean']:.3f}"
    if seeds == 1:
        return text
    return f"{text} ± {scale * stats['std']:.1f}" if scale == 100 else f"{text} ± {stats['std']:.3f}"


def _method_table(results: dict[str, Any], checkpoint: str) -> list[str]:
    seeds = len(results["runs"])
    names = attack_names(results)
    lines = ["| Method | Attack | Avg. | Worst | Overall | NSD |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for method, attacks in results["summary"][checkpoint].items():
        for index, (attack, stats) in enumerate(attacks.items()):
            cells = [_cell(stats[m], seeds) for m in ("avg", "worst", "overall")] + [_cell(stats["nsd"], seeds, 1.0)]
            lines.append(f"| {method if index == 0 else ''} | {names[attack]} | " + " | ".join(cells) + " |")
    return lines


def _paired_table(results: dict[str, Any], method: str) -> list[str]:
    names = attack_names(results)
    head = "| Attack | Metric | " + " | ".join(f"Δ {label} [95% CI] | W / T / L | p" for label in CHECKPOINTS) + " |"
    lines = [head, "| --- | --- |" + " ---: | :---: | ---: |" * len(CHECKPOINTS)]
    for attack in results["paired"]["last"][method]:
        for metric in METRICS:
            cells = []
            for checkpoint in CHECKPOINTS:
                c = results["paired"][checkpoint][method][attack][metric]
                interval = _interval(c) if metric != "nsd" else f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
                cells += [interval, f"{c['wins']} / {c['ties']} / {c['losses']}", _p(c["sign_p"])]
            lines.append(f"| {names[attack]} | {METRIC_NAMES[metric]} | " + " | ".join(cells) + " |")
    return lines


def _teacher_table(results: dict[str, Any]) -> list[str]:
    others = results["methods"][1:]
    head = "| Seed | Clean acc. | PGD-20 avg. | PGD-20 worst | ECE | Confidence | " + " | ".join(
        f"Δ worst PGD-20 (last), {m}" for m in others
    )
    lines = [head + " |", "| --- |" + " ---: |" * (5 + len(others))]
    baseline = results["methods"][0]
    for run in results["runs"]:
        teacher, stats = run["teacher"]["scores"], run["teacher"]["statistics"]
        cells = [
            _points(teacher["clean"]["avg"], False),
            _points(teacher["pgd"]["avg"], False),
            _points(teacher["pgd"]["worst"], False),
            f"{stats['ece']:.3f}",
            f"{stats['confidence']:.2f}",
        ]
        base = run["methods"][baseline]["checkpoints"]["last"]["pgd"]["worst"]
        cells += [_points(run["methods"][m]["checkpoints"]["last"]["pgd"]["worst"] - base) for m in others]
        lines.append(f"| {run['seed']} | " + " | ".join(cells) + " |")
    return lines


def _per_class_table(results: dict[str, Any]) -> list[str]:
    num_classes = results["dataset"]["num_classes"]
    lines = ["| Method | " + " | ".join(str(c) for c in range(num_classes)) + " |", "| --- |" + " ---: |" * num_classes]
    for method, attacks in results["summary"]["best"].items():
        lines.append(f"| {method} | " + " | ".join(_points(v, sign=False) for v in attacks["pgd"]["per_class"]) + " |")
    return lines


def _temperature_table(results: dict[str, Any], method: str) -> list[str]:
    num_classes = results["dataset"]["num_classes"]
    lines = ["| | " + " | ".join(str(c) for c in range(num_classes)) + " |", "| --- |" + " ---: |" * num_classes]
    finals = {
        key: [run["methods"][method]["history"][key][-1] for run in results["runs"]] for key in ("tau_adv", "tau_clean")
    }
    rows = {"τ_adv": finals["tau_adv"], "τ_clean": finals["tau_clean"]}
    rows["τ_adv · τ_clean"] = [[a * c for a, c in zip(*pair)] for pair in zip(finals["tau_adv"], finals["tau_clean"])]
    for label, per_seed in rows.items():
        means = [statistics.fmean(values) for values in zip(*per_seed)]
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in means) + " |")
    return lines


def _setup(results: dict[str, Any]) -> list[str]:
    config, data = results["config"], results["dataset"]
    milestones = ", ".join(str(m) for m in sorted({max(1, round(m * config["epochs"])) for m in config["milestones"]}))
    hidden = "-".join(str(h) for h in config["student_hidden"])
    autoattack = {
        "standard": "AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square)",
        "apgd": "APGD-CE then APGD-T (AutoAttack's first two attacks)",
        "none": "",
    }[config["autoattack"]]
    methods = "; ".join(f"**{m}** = {METHODS[m].description}" for m in results["methods"])
    return [
        f"- **Data**: {data['description']}, pixels in [0, 1]. Each seed draws its own split. L∞ radius "
        f"eps = {results['eps']:.4g} for training and evaluation.",
        f"- **Teacher** (one per seed, trained on that seed's split): CNN conv3x3(32), conv3x3(64), max-pool, FC 256; "
        f"PGD-AT ({config['teacher_attack_steps']} steps of eps/4, uniform start, eps ramped up over the first "
        f"{100 * config['eps_ramp']:.0f}% of epochs), SGD lr {config['teacher_lr']:g}, momentum "
        f"{config['teacher_momentum']:g}, {config['teacher_epochs']} epochs.",
        f"- **Students**: MLP with hidden layers {hidden} and {data['num_classes']} outputs, Adam lr "
        f"{config['student_lr']:g}, weight decay {config['student_weight_decay']:g}, batch {config['batch_size']}, "
        f"{config['epochs']} epochs, lr x0.1 after epochs {milestones} with beta following it; KL-PGD "
        f"({config['attack_steps']} steps of eps/4, Gaussian start) against the teacher's soft labels; beta "
        f"{config['beta']:g}, temperatures in [{config['min_temperature']:g}, {config['max_temperature']:g}]. "
        f"{methods}. In a seed every student starts from the same weights and sees the same data order and "
        "attack noise: the methods differ only in the temperatures.",
        "- **Evaluation**: `torch_absld.evaluate_robustness` on the test split: clean, FGSM, PGD-20 and CW∞-30 "
        f"(steps of eps/4){', ' + autoattack if autoattack else ''}. Avg. = accuracy over all test images, "
        "Worst = the lowest class, Overall = (Avg. + Worst) / 2, in %; NSD = standard deviation of the class "
        "accuracies divided by their mean (lower is fairer). The *best checkpoint* is the epoch with the best "
        "PGD-20 Overall on the test split, as the paper selects (an optimistic choice); the *last epoch* "
        "involves no selection.",
    ]


def render_markdown(results: dict[str, Any], plots: Sequence[str]) -> str:
    """The full ``report.md``; ``results`` must already hold :func:`summarize`'s keys."""
    seeds = len(results["runs"])
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    baseline = results["methods"][0]
    out = [
        f"# torch-absld demo: {', '.join(results['methods'])} on {results['dataset']['name']}",
        "",
        f"{results['date']} · {results['machine']} · {_processes(results)} on {results['config']['device']} · "
        f"torch {results['torch_version']}, torch-absld {results['torch_absld_version']} · "
        f"{_count(seeds, 'seed')} · {results['seconds']:.0f} s",
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
        out += ["", f"## Robustness at the {label} ({spread}, %)", "", *_method_table(results, checkpoint)]
    for method in results["methods"][1:]:
        out += ["", f"## Paired differences {method} − {baseline} (points; mean [95% CI], sign test)", ""]
        out += _paired_table(results, method)
    out += ["", "## Teachers (training split) and the worst-class gain they led to", "", *_teacher_table(results)]
    out += [
        "",
        "## Per-class PGD-20 accuracy at the best checkpoint (mean over seeds, %)",
        "",
        *_per_class_table(results),
    ]
    for method in results["methods"]:
        if METHODS[method].adapts_temperatures:
            out += [
                "",
                f"## Final temperatures of {method} (mean over seeds)",
                "",
                *_temperature_table(results, method),
            ]
    if plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    out += ["", "## Each seed", ""]
    for run in results["runs"]:
        for checkpoint, label in CHECKPOINTS.items():
            epochs = ", ".join(f"{m} {run['methods'][m]['best_epoch'] + 1}" for m in results["methods"])
            detail = f" (epoch: {epochs})" if checkpoint == "best" else ""
            out += [f"Seed {run['seed']}, {label}{detail}:", "", run["tables"][checkpoint], ""]
    return "\n".join(out)


def _processes(results: dict[str, Any]) -> str:
    threads = _count(results["threads"], "thread")
    workers = results.get("workers", 1)
    return threads if workers == 1 else f"{workers} processes of {threads}"


def terminal_summary(results: dict[str, Any]) -> str:
    """A short text for the terminal: the last-epoch table and the verdict."""
    seeds = len(results["runs"])
    lines = [
        f"Robustness at the last epoch ({f'mean ± std over {seeds} seeds' if seeds > 1 else '1 seed'}, %):",
        *_method_table(results, "last"),
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
