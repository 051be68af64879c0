"""The report of the demo and the comparison: tables over seeds, paired comparisons with intervals, a verdict."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .methods import students
from .stats import mean_interval, paired_comparison

__all__ = ["attack_names", "pair_name", "render_markdown", "summarize", "terminal_summary", "write_json"]

CHECKPOINTS = {"best": "best checkpoint", "last": "last epoch"}
METRICS = {"avg": "Avg.", "worst": "Worst", "overall": "Overall", "nsd": "NSD"}
VERDICT_ATTACKS = ("pgd", "autoattack")


def attack_names(results: dict[str, Any]) -> dict[str, str]:
    """Column names of the attacks; AutoAttack is named after what ran."""
    autoattack = "AA" if results["config"]["autoattack"] == "standard" else "APGD-CE+T"
    return {"clean": "Clean", "fgsm": "FGSM", "pgd": "PGD-20", "cw": "CW∞-30", "autoattack": autoattack}


def pair_name(pair: Sequence[str]) -> str:
    """The key of a paired comparison: ``"ABSLD − RSLAD"`` is ABSLD minus RSLAD, seed by seed."""
    return f"{pair[0]} − {pair[1]}"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Means over seeds with intervals (``summary``), paired differences (``paired``) and the ``verdict``.

    ``summary[checkpoint][method][attack]`` holds every metric's :func:`~.stats.mean_interval` and the mean
    ``per_class``; ``paired[checkpoint][pair_name((a, b))][attack][metric]`` is ``a`` minus ``b`` per seed.
    """
    summary: dict[str, Any] = {c: {} for c in CHECKPOINTS}
    paired: dict[str, Any] = {c: {} for c in CHECKPOINTS}
    for c in CHECKPOINTS:
        scores = {m: [run["methods"][m]["checkpoints"][c] for run in results["runs"]] for m in results["methods"]}
        for method, s in scores.items():
            summary[c][method] = {
                attack: {metric: mean_interval([x[attack][metric] for x in s]) for metric in METRICS}
                | {"per_class": [statistics.fmean(v) for v in zip(*(x[attack]["per_class"] for x in s))]}
                for attack in s[0]
            }
        for first, second in results["pairs"]:
            differences = {
                attack: {
                    m: [x[attack][m] - y[attack][m] for x, y in zip(scores[first], scores[second])] for m in METRICS
                }
                for attack in scores[first][0]
            }
            paired[c][pair_name((first, second))] = {
                attack: {m: paired_comparison(d) for m, d in by_metric.items()}
                for attack, by_metric in differences.items()
            }
    return {"summary": summary, "paired": paired, "verdict": _verdict(results, paired)}


def _points(value: float, sign: bool = True) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _interval(c: dict[str, Any], fmt: str = "points") -> str:
    show = _points if fmt == "points" else lambda v: f"{v:+.3f}"
    return show(c["mean"]) if c["n"] < 2 else f"{show(c['mean'])} [{show(c['low'])}, {show(c['high'])}]"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 else f"{value:.2f}"


def _judgement(worst: dict[str, Any]) -> str:
    if worst["n"] < 2:
        return "no interval with 1 seed"
    if worst["low"] > 0:
        return "a clear gain (the 95% interval lies above zero)"
    if worst["high"] < 0:
        return "a clear LOSS (the 95% interval lies below zero)"
    return "no clear effect (the 95% interval contains zero)"


def _verdict(results: dict[str, Any], paired: dict[str, Any]) -> list[str]:
    names, seeds = attack_names(results), len(results["runs"])
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
    if seeds == 1:
        what = "One seed: the differences of that seed, with no interval (an interval needs 2 or more seeds)"
    else:
        what = f"Means over {seeds} seeds of the per-seed differences, with 95% Student-t intervals"
    lines.append(
        f"{what}; each seed draws its own split and teacher. The same command on the same machine gives the same "
        "numbers; floating point differs across CPUs, so another machine gives other numbers, which should fall "
        "within these intervals."
    )
    return lines


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> list[str]:
    """A markdown table; the first ``left`` columns are text, the others numbers (right-aligned)."""
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * left + " ---: |" * (len(head) - left)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _cell(stats: dict[str, Any], seeds: int, percent: bool = True) -> str:
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{scale * stats['mean']:.{digits}f}"
    return text if seeds == 1 else f"{text} ± {scale * float(stats['high'] - stats['low']) / 2:.{digits}f}"


def _method_table(results: dict[str, Any], checkpoint: str, fairness: bool) -> list[str]:
    """The paper's Table 1 layout (Avg. and Worst under every attack) or Overall and NSD (not clean)."""
    seeds, names, stats = len(results["runs"]), attack_names(results), results["summary"][checkpoint]
    metrics = ("overall", "nsd") if fairness else ("avg", "worst")
    attacks = [a for a in stats[results["methods"][0]] if not (fairness and a == "clean")]
    head = ["Method"] + [f"{names[a]} {METRICS[m]}" for a in attacks for m in metrics]
    rows = ([m] + [_cell(s[a][k], seeds, k != "nsd") for a in attacks for k in metrics] for m, s in stats.items())
    return _table(head, rows)


def _paired_table(results: dict[str, Any], key: str) -> list[str]:
    names, ci = attack_names(results), " [95% CI]" if len(results["runs"]) > 1 else ""
    head = ["Attack", "Metric"] + [h for label in CHECKPOINTS for h in (f"Δ {label}{ci}", "W / T / L", "p")]
    rows = []
    for attack in results["paired"]["last"][key]:
        for metric, label in METRICS.items():
            cells = [names[attack], label]
            for c in (results["paired"][checkpoint][key][attack][metric] for checkpoint in CHECKPOINTS):
                interval = _interval(c, "points" if metric != "nsd" else "ratio")
                cells += [interval, f"{c['wins']} / {c['ties']} / {c['losses']}", _p(c["sign_p"])]
            rows.append(cells)
    return _table(head, rows, 2)


def _teacher_table(results: dict[str, Any]) -> list[str]:
    head = ["Seed", "Clean acc.", "PGD-20 avg.", "PGD-20 worst", "ECE", "Confidence"]
    head += [f"Δ worst PGD-20 (last), {pair_name(p)}" for p in results["pairs"]]
    rows = []
    for run in results["runs"]:
        teacher, stats = run["teacher"]["scores"], run["teacher"]["statistics"]
        worst = {m: run["methods"][m]["checkpoints"]["last"]["pgd"]["worst"] for m in results["methods"]}
        accuracies = [teacher["clean"]["avg"], teacher["pgd"]["avg"], teacher["pgd"]["worst"]]
        cells = [*(_points(v, False) for v in accuracies), f"{stats['ece']:.3f}", f"{stats['confidence']:.2f}"]
        rows.append([str(run["seed"]), *cells, *(_points(worst[a] - worst[b]) for a, b in results["pairs"])])
    return _table(head, rows)


def _autoattack_checks(results: dict[str, Any]) -> list[str]:
    """What AutoAttack's own sanity checks said (e.g. Square finding errors the gradient attacks missed)."""
    flagged = [
        f"- seed {run['seed']}, {method}, {checkpoint}: {message}"
        for run in results["runs"]
        for method, result in run["methods"].items()
        for checkpoint, messages in result.get("autoattack_checks", {}).items()
        for message in messages
    ]
    evaluations = 2 * len(results["runs"]) * len(results["methods"])
    return flagged and [
        f"AutoAttack's own checks flagged {len(flagged)} of {evaluations} evaluations (a black-box attack "
        "finding errors that the gradient attacks missed hints at gradient masking):",
        "",
        *flagged,
    ]


def _class_table(first: str, rows: dict[str, list[float]], fmt: str, num_classes: int) -> list[str]:
    return _table([first, *map(str, range(num_classes))], ([k, *(format(v, fmt) for v in r)] for k, r in rows.items()))


def _temperature_rows(results: dict[str, Any], method: str) -> dict[str, list[float]]:
    adv, clean = (
        [run["methods"][method]["history"][k][-1] for run in results["runs"]] for k in ("tau_adv", "tau_clean")
    )
    product = [[a * c for a, c in zip(*pair)] for pair in zip(adv, clean)]
    rows = {"τ_adv": adv, "τ_clean": clean, "τ_adv · τ_clean": product}
    return {label: [statistics.fmean(v) for v in zip(*per_seed)] for label, per_seed in rows.items()}


def _setup(results: dict[str, Any]) -> list[str]:
    config, data = results["config"], results["dataset"]
    milestones = ", ".join(str(m) for m in sorted({max(1, round(m * config["epochs"])) for m in config["milestones"]}))
    autoattack = {
        "standard": ", AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square)",
        "apgd": ", APGD-CE then APGD-T (AutoAttack's first two attacks)",
        "none": "",
    }[config["autoattack"]]
    known = students()
    methods = "; ".join(f"**{m}** = {known[m].description if m in known else m}" for m in results["methods"])
    return [
        f"- **Data**: {data['description']}, pixels in [0, 1]. Each seed draws its own split. L∞ radius "
        f"eps = {results['eps']:.4g} for training and evaluation.",
        f"- **Teacher** (one per seed, trained on that seed's split): CNN conv3x3(32), conv3x3(64), max-pool, FC 256; "
        f"PGD-AT ({config['teacher_attack_steps']} steps of eps/4, uniform start, eps ramped up over the first "
        f"{100 * config['eps_ramp']:.0f}% of epochs), SGD lr {config['teacher_lr']:g}, momentum "
        f"{config['teacher_momentum']:g}, {config['teacher_epochs']} epochs.",
        f"- **Students**: MLP with hidden layers {'-'.join(map(str, config['student_hidden']))} and "
        f"{data['num_classes']} outputs, Adam lr {config['student_lr']:g}, weight decay "
        f"{config['student_weight_decay']:g}, batch {config['batch_size']}, {config['epochs']} epochs, lr x0.1 after "
        f"epochs {milestones}; every method's training attack takes {config['attack_steps']} steps of eps/4 (its own "
        f"objective and start); ABSLD's beta {config['beta']:g} follows the lr, temperatures in "
        f"[{config['min_temperature']:g}, {config['max_temperature']:g}]. {methods}. In a seed every student starts "
        "from the same weights and sees the same data order and attack noise: the methods differ only in their "
        "training objective.",
        "- **Evaluation**: `torch_absld.evaluate_robustness` on the test split: clean, FGSM, PGD-20 and CW∞-30 "
        f"(steps of eps/4){autoattack}. Avg. = accuracy over all test images, Worst = the lowest class, Overall = "
        "(Avg. + Worst) / 2, in %; NSD = standard deviation of the class accuracies divided by their mean (lower "
        "is fairer). The *best checkpoint* is the epoch with the best PGD-20 Overall on the test split, as the "
        "paper selects (an optimistic choice); the *last epoch* involves no selection.",
    ]


def _spread(seeds: int) -> str:
    return f"mean ± 95% CI half-width over {seeds} seeds" if seeds > 1 else "1 seed, no interval"


def _section(title: str, lines: Iterable[str]) -> list[str]:
    return ["", f"## {title}", "", *lines]


def render_markdown(results: dict[str, Any], plots: Sequence[str]) -> str:
    """The full ``report.md``; ``results`` must already hold :func:`summarize`'s keys."""
    seeds, num_classes, known = len(results["runs"]), results["dataset"]["num_classes"], students()
    workers, threads = results.get("workers", 1), f"{results['threads']} thread" + "s" * (results["threads"] != 1)
    processes = threads if workers == 1 else f"{workers} processes of {threads}"
    out = [
        f"# torch-absld {results['command']}: {', '.join(results['methods'])} on {results['dataset']['name']}",
        "",
        f"{results['date']} · {results['machine']} · {processes} on {results['config']['device']} · "
        f"torch {results['torch_version']}, torch-absld {results['torch_absld_version']} · "
        f"{seeds} seed{'s' * (seeds != 1)} · {results['seconds']:.0f} s",
        *_section("Verdict", (f"- {line}" for line in results["verdict"])),
        *_section("What was measured", _setup(results)),
    ]
    for checkpoint, label in CHECKPOINTS.items():
        out += _section(f"Robustness at the {label} ({_spread(seeds)}, %)", _method_table(results, checkpoint, False))
        out += ["", f"Overall (%) and NSD at the {label}:", "", *_method_table(results, checkpoint, True)]
    how = "mean [95% CI], sign test" if seeds > 1 else "1 seed, no interval"
    for key in map(pair_name, results["pairs"]):
        out += _section(f"Paired differences {key} (points; {how})", _paired_table(results, key))
    out += _section("Teachers (training split) and the worst-class gain they led to", _teacher_table(results))
    if checks := _autoattack_checks(results):
        out += _section("AutoAttack's checks", checks)
    per_class = {m: [100 * v for v in a["pgd"]["per_class"]] for m, a in results["summary"]["best"].items()}
    title = "Per-class PGD-20 accuracy at the best checkpoint (mean over seeds, %)"
    out += _section(title, _class_table("Method", per_class, ".1f", num_classes))
    for method in (m for m in results["methods"] if m in known and known[m].adapts_temperatures):
        rows = _class_table("", _temperature_rows(results, method), ".2f", num_classes)
        out += _section(f"Final temperatures of {method} (mean over seeds)", rows)
    if plots:
        out += _section("Plots", (f"![{Path(p).stem}]({Path(p).name})" for p in plots))
    out += _section("Each seed", [])
    for run in results["runs"]:
        for checkpoint, label in CHECKPOINTS.items():
            epochs = ", ".join(f"{m} {run['methods'][m]['best_epoch'] + 1}" for m in results["methods"])
            detail = f" (epoch: {epochs})" if checkpoint == "best" else ""
            out += [f"Seed {run['seed']}, {label}{detail}:", "", run["tables"][checkpoint], ""]
    return "\n".join(out)


def terminal_summary(results: dict[str, Any]) -> str:
    """A short text for the terminal: the last-epoch table and the verdict."""
    table = _method_table(results, "last", False)
    return "\n".join(
        [f"Robustness at the last epoch ({_spread(len(results['runs']))}, %):", *table, "", *results["verdict"]]
    )


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` as strict JSON (NaN, e.g. the risk of a class unseen in an epoch, becomes null)."""
    finite = json.loads(json.dumps(results), parse_constant=lambda constant: None)
    path.write_text(json.dumps(finite, indent=1, allow_nan=False) + "\n", encoding="utf-8")
