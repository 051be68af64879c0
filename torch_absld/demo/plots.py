"""The demo's figures (matplotlib, Agg): per-class robustness, robustness over epochs, temperatures, risk spread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .methods import students

__all__ = ["normalised_risk_std", "style", "write_plots"]

# Okabe-Ito's eight colour-blind-safe colours, then Tol's grey and wine; one marker per colour.
_OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
_COLOURS: tuple[str, ...] = (*_OKABE_ITO, "#999999", "#882255")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def style(methods: list[str], method: str) -> dict[str, Any]:
    """Colour, marker and weight of ``method``: distinct for up to 100 methods, the ABSLD family drawn heavier."""
    i, strong = methods.index(method), method.startswith("ABSLD")
    return {
        "color": _COLOURS[i % 10],
        "marker": _MARKERS[(i + i // 10) % 10],
        "linewidth": 2.6 if strong else 1.3,
        "markeredgecolor": "black" if strong else _COLOURS[i % 10],
        "markersize": 7.5 if strong else 6,
        "zorder": 3 if strong else 2,
    }


def normalised_risk_std(risk: np.ndarray) -> np.ndarray:
    r"""Per epoch, the standard deviation over classes of $R_k / \bar R$ (the paper's Figure 5), NaN classes left out.

    Shape:
        - risk: $(E, C)$, NaN for a class without samples in an epoch
        - Output: $(E,)$
    """
    return np.asarray(np.nanstd(risk / np.nanmean(risk, axis=1, keepdims=True), axis=1))


def _history(results: dict[str, Any], method: str, key: str) -> np.ndarray:
    """``(seeds, epochs)`` or ``(seeds, epochs, classes)`` array of one history entry (``None`` read as NaN)."""
    return np.array([run["methods"][method]["history"][key] for run in results["runs"]], dtype=float)


def _mean_and_half(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over seeds (axis 0) and the half-width of its 95% Student-t interval (``None`` for one seed)."""
    if len(values) < 2:
        return values.mean(axis=0), None
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(values) - 1)) * values.std(axis=0, ddof=1) / np.sqrt(len(values))
    return values.mean(axis=0), half


def _caption(results: dict[str, Any], what: str) -> str:
    seeds = len(results["runs"])
    return f"mean over {seeds} seeds, {what}: 95% t-interval" if seeds > 1 else "1 seed, no interval"


def _finish(fig: Any, ax: Any, title: str) -> Any:
    fig.suptitle(title)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", title="method")
    return fig


def _per_class_pgd(plt: Any, results: dict[str, Any]) -> Any:
    methods, num_classes = results["methods"], results["dataset"]["num_classes"]
    fig, axes = plt.subplots(2, 1, figsize=(13, 7.5), sharey=True, layout="constrained")
    for ax, (checkpoint, label) in zip(axes, (("best", "best checkpoint"), ("last", "last epoch"))):
        for i, method in enumerate(methods):
            runs = results["runs"]
            mean, half = _mean_and_half(
                100 * np.array([run["methods"][method]["checkpoints"][checkpoint]["pgd"]["per_class"] for run in runs])
            )
            error = None if half is None else [mean - np.clip(mean - half, 0, 100), np.clip(mean + half, 0, 100) - mean]
            x = np.arange(num_classes) + (i - (len(methods) - 1) / 2) * 0.8 / len(methods)
            s = style(methods, method)
            ax.errorbar(
                x, mean, error, linestyle="none", capsize=2, elinewidth=s.pop("linewidth") / 1.5, label=method, **s
            )
        for boundary in np.arange(num_classes - 1) + 0.5:
            ax.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
        ax.set(xticks=range(num_classes), xlim=(-0.5, num_classes - 0.5), ylabel="accuracy (%)")
        ax.set_title(f"PGD-20 accuracy per class, {label}")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("class")
    return _finish(fig, axes[0], f"Test PGD-20 accuracy per class ({_caption(results, 'bars')})")


def _curves(plt: Any, results: dict[str, Any], methods: list[str], panels: dict[str, str], spread: Any) -> Any:
    """One panel per history key: per method the mean over seeds of ``spread(history)`` and its band."""
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.6), sharey=True, layout="constrained")
    for ax, (key, title) in zip(axes, panels.items()):
        for method in methods:
            mean, half = _mean_and_half(spread(_history(results, method, key)))
            epochs, s = np.arange(1, len(mean) + 1), style(results["methods"], method)
            ax.plot(epochs, mean, label=method, markevery=max(1, len(mean) // 8), **s)
            if half is not None:
                ax.fill_between(epochs, mean - half, mean + half, color=s["color"], alpha=0.15, linewidth=0)
        ax.set(title=title, xlabel="epoch")
        ax.locator_params(axis="x", integer=True)
        ax.grid(alpha=0.3)
    return fig, axes


def _pgd_curves(plt: Any, results: dict[str, Any]) -> Any:
    panels = {"pgd_avg": "average", "pgd_worst": "worst class"}
    fig, axes = _curves(plt, results, results["methods"], panels, lambda history: 100 * history)
    axes[0].set_ylabel("accuracy (%)")
    return _finish(fig, axes[0], f"Test PGD-20 accuracy over epochs ({_caption(results, 'bands')})")


def _risk_std(plt: Any, results: dict[str, Any]) -> Any:
    methods = [m for m in results["methods"] if "risk_adv" in results["runs"][0]["methods"][m]["history"]]
    if not methods:
        return None
    panels = {"risk_adv": "adversarial risk", "risk_clean": "clean risk"}
    fig, axes = _curves(plt, results, methods, panels, lambda h: np.stack([normalised_risk_std(r) for r in h]))
    axes[0].set_ylabel("std over classes of risk / mean risk")
    return _finish(fig, axes[0], f"Spread of the class-wise training risk ({_caption(results, 'bands')})")


def _temperatures(plt: Any, results: dict[str, Any]) -> Any:
    known = students()
    methods = [m for m in results["methods"] if m in known and known[m].adapts_temperatures]
    if not methods:
        return None
    num_classes, seeds = results["dataset"]["num_classes"], len(results["runs"])
    rows, columns = -(-num_classes // 5), min(5, num_classes)
    size = (2.9 * columns + 1.5, 2.6 * rows + 0.8)
    fig, axes = plt.subplots(rows, columns, figsize=size, sharex=True, sharey=True, squeeze=False, layout="constrained")
    for method in methods:
        s = style(results["methods"], method)
        for key, name, dash in (("tau_adv", "τ_adv", "-"), ("tau_clean", "τ_clean", ":")):
            tau = _history(results, method, key)
            mean, low, high, epochs = tau.mean(axis=0), tau.min(axis=0), tau.max(axis=0), np.arange(1, tau.shape[1] + 1)
            every = max(1, len(epochs) // 6)
            for c, ax in enumerate(axes.flat[:num_classes]):
                ax.plot(epochs, mean[:, c], linestyle=dash, label=f"{method} {name}", markevery=every, **s)
                if seeds > 1:
                    ax.fill_between(epochs, low[:, c], high[:, c], color=s["color"], alpha=0.12, linewidth=0)
    for c, ax in enumerate(axes.flat):
        ax.set_visible(c < num_classes)
        ax.set(title=f"class {c}", yscale="log")
        ax.yaxis.set_major_formatter("{x:g}")
        ax.yaxis.set_minor_formatter(lambda v, _: f"{v:g}" if round(v, 3) in (0.5, 2, 3, 5, 20, 50) else "")
        ax.grid(alpha=0.3, which="both")
    fig.supxlabel("epoch")
    fig.supylabel("teacher temperature (log scale)")
    band = f"line: mean over {seeds} seeds, band: min to max" if seeds > 1 else "1 seed"
    return _finish(fig, axes.flat[0], f"Teacher temperatures per class (solid τ_adv, dotted τ_clean; {band})")


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNG figures into ``out_dir``; returns their paths (temperatures and risk only when there are some)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    written = []
    names = ("per_class_pgd", "temperatures", "risk_spread", "pgd_over_epochs")
    for name, draw in zip(names, (_per_class_pgd, _temperatures, _risk_std, _pgd_curves)):
        if (fig := draw(plt, results)) is not None:
            fig.savefig(out_dir / f"{name}.png", dpi=110)
            plt.close(fig)
            written.append(out_dir / f"{name}.png")
    return written
