"""The demo's figures (matplotlib, Agg backend): per-class robustness, temperatures, risk spread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .methods import METHODS

__all__ = ["normalised_risk_std", "write_plots"]

_PALETTE = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _color(results: dict[str, Any], method: str) -> str:
    return _PALETTE[results["methods"].index(method) % len(_PALETTE)]


def normalised_risk_std(risk: np.ndarray) -> np.ndarray:
    r"""Per epoch, the standard deviation over classes of $R_k / \bar R$ (the paper's Figure 5).

    Classes without a sample in an epoch (NaN risk) are left out of that epoch.

    Shape:
        - risk: $(E, C)$, NaN for unseen classes
        - Output: $(E,)$
    """
    normalised = risk / np.nanmean(risk, axis=1, keepdims=True)
    return np.asarray(np.nanstd(normalised, axis=1))


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError('The demo\'s plots need matplotlib: pip install "torch-absld[demo]"') from error
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _history(results: dict[str, Any], method: str, key: str) -> np.ndarray:
    """``(seeds, epochs, ...)`` array of one history entry, None (NaN) made float."""
    data = [run["methods"][method]["history"][key] for run in results["runs"]]
    return np.array(
        [[[np.nan if v is None else v for v in row] if isinstance(row, list) else row for row in h] for h in data],
        dtype=float,
    )


def _per_class_pgd(plt: Any, results: dict[str, Any], path: Path) -> bool:
    methods = results["methods"]
    num_classes = results["dataset"]["num_classes"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    width = 0.8 / len(methods)
    positions = np.arange(num_classes)
    for ax, (checkpoint, label) in zip(axes, (("best", "best checkpoint"), ("last", "last epoch"))):
        for index, method in enumerate(methods):
            values = np.array(
                [run["methods"][method]["checkpoints"][checkpoint]["pgd"]["per_class"] for run in results["runs"]]
            )
            error = values.std(axis=0, ddof=1) if len(values) > 1 else None
            ax.bar(
                positions + (index - (len(methods) - 1) / 2) * width,
                100 * values.mean(axis=0),
                width,
                yerr=None if error is None else 100 * error,
                label=method,
                color=_color(results, method),
                capsize=2,
            )
        ax.set_xticks(positions)
        ax.set_xlabel("class")
        ax.set_title(f"PGD-20 accuracy per class, {label}")
        ax.grid(axis="y", alpha=0.3)
    seeds = len(results["runs"])
    axes[0].set_ylabel(f"accuracy (%), mean over {seeds} seeds" if seeds > 1 else "accuracy (%)")
    axes[0].legend()
    return _save(plt, fig, path)


def _temperatures(plt: Any, results: dict[str, Any], path: Path) -> bool:
    seed = results["runs"][0]["seed"]
    methods = [m for m in results["methods"] if METHODS[m].adapts_temperatures]
    if not methods:
        return False
    fig, axes = plt.subplots(len(methods), 3, figsize=(15, 3.6 * len(methods)), sharey=True, squeeze=False)
    panels = (("tau_adv", "τ_adv"), ("tau_clean", "τ_clean"), ("product", "τ_adv · τ_clean"))
    cmap = plt.get_cmap("tab10")
    for row, method in zip(axes, methods):
        tau = {key: _history(results, method, key)[0] for key in ("tau_adv", "tau_clean")}
        tau["product"] = tau["tau_adv"] * tau["tau_clean"]
        for ax, (key, label) in zip(row, panels):
            values = tau[key]
            epochs = np.arange(1, values.shape[0] + 1)
            for c in range(values.shape[1]):
                ax.plot(epochs, values[:, c], color=cmap(c % 10), label=str(c))
            ax.set_title(f"{method}: {label}, seed {seed}")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        row[0].set_ylabel("teacher temperature (log scale)")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    axes[0][-1].legend(title="class", ncol=2, fontsize="small")
    return _save(plt, fig, path)


def _risk_std(plt: Any, results: dict[str, Any], path: Path) -> bool:
    if not any(METHODS[m].temperatures for m in results["methods"]):
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key, label in zip(axes, ("risk_adv", "risk_clean"), ("adversarial", "clean")):
        for method in (m for m in results["methods"] if key in results["runs"][0]["methods"][m]["history"]):
            risk = _history(results, method, key)
            spread = np.stack([normalised_risk_std(r) for r in risk])
            epochs = np.arange(1, spread.shape[1] + 1)
            ax.plot(epochs, spread.mean(axis=0), color=_color(results, method), label=method)
            if len(spread) > 1:
                ax.fill_between(
                    epochs, spread.min(axis=0), spread.max(axis=0), color=_color(results, method), alpha=0.15
                )
        band = "\n(line: mean, band: min to max over seeds)" if len(results["runs"]) > 1 else ""
        ax.set_title(f"Spread of the {label} class-wise training risk{band}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("std over classes of risk / mean risk")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return _save(plt, fig, path)


def _pgd_curves(plt: Any, results: dict[str, Any], path: Path) -> bool:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, key, label in zip(axes, ("pgd_avg", "pgd_worst"), ("average", "worst class")):
        for method in results["methods"]:
            values = 100 * _history(results, method, key)
            epochs = np.arange(1, values.shape[1] + 1)
            ax.plot(epochs, values.mean(axis=0), color=_color(results, method), label=method)
        ax.set_title(f"Test PGD-20 accuracy, {label} (mean over seeds)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend()
    return _save(plt, fig, path)


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNG figures into ``out_dir`` and return their paths.

    The temperature and risk figures are drawn only when a method has temperatures.
    """
    plt = _pyplot()
    figures = {
        "per_class_pgd.png": _per_class_pgd,
        "temperatures.png": _temperatures,
        "risk_spread.png": _risk_std,
        "pgd_over_epochs.png": _pgd_curves,
    }
    return [out_dir / name for name, draw in figures.items() if draw(plt, results, out_dir / name)]


def _save(plt: Any, fig: Any, path: Path) -> bool:
    """Lay ``fig`` out, write it to ``path`` and close it; ``True`` (the figure was written)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
