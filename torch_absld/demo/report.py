"""The report of the demo and the comparison: tables over seeds, paired comparisons with intervals, a verdict."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .methods import METHODS
from .stats import mean_interval, paired_comparison

__all__ = ["attack_names", "pair_name", "render_markdown", "summarize", "terminal_summary", "write_json"]

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


def pair_name(pair: Sequence[str]) -> str:
    """The key of a paired comparison: ``"ABSLD − RSLAD"`` is ABSLD minus RSLAD, seed by seed."""
    return f"{pair[0]} − {pair[1]}"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Means over seeds with intervals, and the paired comparisons of ``results["pairs"]``.

    ``summary[checkpoint][method][attack]`` holds ``avg``, ``worst``, ``overall`` and ``nsd``
    (each a :class:`~torch_absld.demo.stats.MeanInterval` as a dict) and the mean
    ``per_class`` accuracy; ``paired[checkpoint][pair_name((a, b))][attack][metric]`` holds the
    :class:`~torch_absld.demo.stats.PairedComparison` of ``a`` minus ``b`` per seed, as a dict.
    """
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
        paired[checkpoint] = {}
        for first, second in results["pairs"]:
            a, b = _scores(results, first, checkpoint), _scores(results, second, checkpoint)
            paired[checkpoint][pair_name((first, second))] = {
                attack: {
                    metric: paired_comparison([x[attack][metric] - y[attack][metric] for x, y in zip(a, b)]).to_dict()
                    for metric in METRICS
                }
                for attack in a[0]
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
    seeds = len(results["runs"])
    lines = []
    for first, second in results["pairs"]:
        key = pair_name((first, second))
        for attack in (a for a in VERDICT_ATTACKS if a in paired["last"][key]):
            last, best = paired["last"][key][attack], paired["best"][key][attack]
            lines.append(
                f"{first} vs {second} under {names[attack]}: worst class {_interval(last['worst'])} points at "
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


def _half_width(stats: dict[str, Any]) -> float:
    return float(stats["high"] - stats["low"]) / 2


def _cell(stats: dict[str, Any], seeds: int, percent: bool = True) -> str:
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{scale * stats['mean']:.{digits}f}"
    return text if seeds == 1 else f"{text} ± {scale * _half_width(stats):.{digits}f}"


def _table1(results: dict[str, Any], checkpoint: str) -> list[str]:
    """The paper's Table 1 layout: one row per method, Avg. and Worst under every attack."""
    seeds = len(results["runs"])
    names = attack_names(results)
    attacks = list(results["summary"][checkpoint][results["methods"][0]])
    head = "| Method | " + " | ".join(f"{names[a]} Avg. | {names[a]} Worst" for a in attacks) + " |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(attacks)]
    for method, stats in results["summary"][checkpoint].items():
        cells = [_cell(stats[a][m], seeds) for a in attacks for m in ("avg", "worst")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _fairness_table(results: dict[str, Any], checkpoint: str) -> list[str]:
    """Overall = (Avg. + Worst) / 2 (%) and NSD under every attack but the clean one."""
    seeds = len(results["runs"])
    names = attack_names(results)
    attacks = [a for a in results["summary"][checkpoint][results["methods"][0]] if a != "clean"]
    head = "| Method | " + " | ".join(f"{names[a]} Overall | {names[a]} NSD" for a in attacks) + " |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(attacks)]
    for method, stats in results["summary"][checkpoint].items():
        cells = [c for a in attacks for c in (_cell(stats[a]["overall"], seeds), _cell(stats[a]["nsd"], seeds, False))]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _paired_table(results: dict[str, Any], key: str) -> list[str]:
    names = attack_names(results)
    head = "| Attack | Metric | " + " | ".join(f"Δ {label} [95% CI] | W / T / L | p" for label in CHECKPOINTS) + " |"
    lines = [head, "| --- | --- |" + " ---: | :---: | ---: |" * len(CHECKPOINTS)]
    for attack in results["paired"]["last"][key]:
        for metric in METRICS:
            cells = []
            for checkpoint in CHECKPOINTS:
                c = results["paired"][checkpoint][key][attack][metric]
                interval = _interval(c) if metric != "nsd" else f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
                cells += [interval, f"{c['wins']} / {c['ties']} / {c['losses']}", _p(c["sign_p"])]
            lines.append(f"| {names[attack]} | {METRIC_NAMES[metric]} | " + " | ".join(cells) + " |")
    return lines


def _teacher_table(results: dict[str, Any]) -> list[str]:
    pairs = [pair_name(p) for p in results["pairs"]]
    head = "| Seed | Clean acc. | PGD-20 avg. | PGD-20 worst | ECE | Confidence | " + " | ".join(
        f"Δ worst PGD-20 (last), {p}" for p in pairs
    )
    lines = [head + " |", "| --- |" + " ---: |" * (5 + len(pairs))]
    for run in results["runs"]:
        teacher, stats = run["teacher"]["scores"], run["teacher"]["statistics"]
        cells = [
            _points(teacher["clean"]["avg"], False),
            _points(teacher["pgd"]["avg"], False),
            _points(teacher["pgd"]["worst"], False),
            f"{stats['ece']:.3f}",
            f"{stats['confidence']:.2f}",
        ]
        worst = {m: run["methods"][m]["checkpoints"]["last"]["pgd"]["worst"] for m in results["methods"]}
        cells += [_points(worst[a] - worst[b]) for a, b in results["pairs"]]
        lines.append(f"| {run['seed']} | " + " | ".join(cells) + " |")
    return lines


def _autoattack_checks(results: dict[str, Any]) -> list[str]:
    """What AutoAttack's own sanity checks said (e.g. Square finding errors the gradient attacks missed)."""
    flagged = [
        (run["seed"], method, checkpoint, message)
        for run in results["runs"]
        for method, result in run["methods"].items()
        for checkpoint, messages in result.get("autoattack_checks", {}).items()
        for message in messages
    ]
    if not flagged:
        return []
    evaluations = 2 * len(results["runs"]) * len(results["methods"])
    lines = [
        f"AutoAttack's own checks flagged {len(flagged)} of {evaluations} evaluations (a black-box attack "
        "finding errors that the gradient attacks missed hints at gradient masking):",
        "",
    ]
    lines += [f"- seed {seed}, {method}, {checkpoint}: {message}" for seed, method, checkpoint, message in flagged]
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
        f"{config['epochs']} epochs, lr x0.1 after epochs {milestones}; every method's training attack takes "
        f"{config['attack_steps']} steps of eps/4 (its own objective and start); ABSLD's beta "
        f"{config['beta']:g} follows the lr, temperatures in [{config['min_temperature']:g}, "
        f"{config['max_temperature']:g}]. {methods}. In a seed every student starts from the same weights and sees "
        "the same data order and attack noise: the methods differ only in their training objective.",
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
    spread = f"mean ± 95% CI half-width over {seeds} seeds" if seeds > 1 else "1 seed"
    out = [
        f"# torch-absld {results['command']}: {', '.join(results['methods'])} on {results['dataset']['name']}",
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
        out += ["", f"## Robustness at the {label} ({spread}, %)", "", *_table1(results, checkpoint)]
        out += ["", f"Overall (%) and NSD at the {label}:", "", *_fairness_table(results, checkpoint)]
    for pair in results["pairs"]:
        key = pair_name(pair)
        out += ["", f"## Paired differences {key} (points; mean [95% CI], sign test)", "", *_paired_table(results, key)]
    out += ["", "## Teachers (training split) and the worst-class gain they led to", "", *_teacher_table(results)]
    checks = _autoattack_checks(results)
    if checks:
        out += ["", "## AutoAttack's checks", "", *checks]
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
    spread = f"mean ± 95% CI half-width over {seeds} seeds" if seeds > 1 else "1 seed"
    lines = [f"Robustness at the last epoch ({spread}, %):", *_table1(results, "last")]
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
