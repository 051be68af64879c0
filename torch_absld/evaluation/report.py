"""The result of a class-wise robustness evaluation, printable as the paper's tables."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .._internal.checks import check_num_classes, check_positive
from .metrics import ClassAccuracyResult, class_accuracy_summary, worst_class_count

__all__ = ["RobustnessReport", "reports_to_markdown"]

ATTACK_LABELS = {"clean": "Clean", "fgsm": "FGSM", "pgd": "PGD", "cw": "CW∞", "autoattack": "AA"}


def _label(name: str) -> str:
    return ATTACK_LABELS.get(name, name)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


class RobustnessReport(Mapping[str, ClassAccuracyResult]):
    """Class-wise accuracy under each attack, as returned by :func:`torch_absld.evaluate_robustness`.

    A read-only mapping, in evaluation order, from attack name to :class:`~torch_absld.ClassAccuracyResult`
    (fractions; the tables give percentages and NSDs), with ``num_classes``, ``eps``, ``worst_fraction``, ``settings``.

    Example:
        >>> from torch_absld import class_accuracy_summary
        >>> report = RobustnessReport({"clean": class_accuracy_summary([9, 6], [10, 10])}, num_classes=2, eps=8 / 255)
        >>> report["clean"].avg, report["clean"].worst, report["clean"].overall
        (0.75, 0.6, 0.675)
    """

    def __init__(
        self,
        results: Mapping[str, ClassAccuracyResult],
        *,
        num_classes: int,
        eps: float,
        worst_fraction: float | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(results, Mapping):
            raise TypeError(f"Expected `results` to be a mapping of ClassAccuracyResult, got {type(results).__name__}.")
        self.num_classes = check_num_classes(num_classes, minimum=1)
        self.eps = check_positive(eps, "eps", allow_zero=True)
        worst_class_count(num_classes, worst_fraction)  # validates worst_fraction
        if settings is not None and not isinstance(settings, Mapping):
            raise TypeError(f"Expected `settings` to be a mapping or None, but got {settings!r:.80}.")
        if not results:
            raise ValueError("Expected `results` to hold at least one attack, but got none.")
        for name, result in results.items():
            if not isinstance(result, ClassAccuracyResult):
                raise TypeError(f"Expected `results[{name!r}]` to be a ClassAccuracyResult, got {type(result)}.")
            if len(result.per_class) != num_classes:
                raise ValueError(f"Expected `results[{name!r}]` to have {num_classes} classes, got {result.per_class}.")
        self._results = dict(results)
        self.worst_fraction = worst_fraction
        self.settings: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (settings or {}).items()}

    @property
    def attacks(self) -> tuple[str, ...]:
        """The attack names, in evaluation order."""
        return tuple(self._results)

    @property
    def num_samples(self) -> int:
        """Number of samples evaluated."""
        return next(iter(self._results.values())).num_samples

    @property
    def worst_k(self) -> int:
        """How many classes *Worst* averages."""
        return worst_class_count(self.num_classes, self.worst_fraction)

    def __getitem__(self, name: str) -> ClassAccuracyResult:
        if name not in self._results:
            raise KeyError(f"No attack {name!r} in this report; it holds {', '.join(map(repr, self.attacks))}.")
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def to_markdown(
        self, name: str = "Model", *, per_class: bool = False, class_names: Sequence[str] | None = None
    ) -> str:
        """:func:`reports_to_markdown` with row label ``name``; ``per_class``: a per-class table too."""
        table = reports_to_markdown({name: self})
        if not per_class:
            return table
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"Expected `class_names` of length {self.num_classes}, but got {len(class_names)}.")
        names = list(class_names) if class_names is not None else [str(c) for c in range(self.num_classes)]
        rows = [[name, *(_pct(self[a].per_class[c]) for a in self.attacks)] for c, name in enumerate(names)]
        return table + "\n\n" + _table(["Class", *map(_label, self.attacks)], rows)

    def __str__(self) -> str:
        in_255 = self.eps * 255
        eps = f"{round(in_255)}/255" if self.eps > 0 and abs(in_255 - round(in_255)) < 1e-6 else f"{self.eps:.4g}"
        worst = "the lowest class" if self.worst_k == 1 else f"the mean of the {self.worst_k} lowest classes"
        samples = f"{self.num_samples} samples, {self.num_classes} classes"
        header = f"Robustness (%) on {samples}, L-inf eps = {eps}; Worst = {worst}"
        width = max(6, *(len(_label(a)) for a in self.attacks))
        rows = [f"{'Attack':<{width}}  {'Avg.':>7}  {'Worst':>7}  {'Overall':>7}"]
        for attack in self.attacks:
            r = self[attack]
            rows.append(f"{_label(attack):<{width}}  {_pct(r.avg):>7}  {_pct(r.worst):>7}  {_pct(r.overall):>7}")
        return "\n".join([header, *rows])

    def __repr__(self) -> str:
        summary = ", ".join(f"{a}: avg={self[a].avg:.4f} worst={self[a].worst:.4f}" for a in self.attacks)
        return f"RobustnessReport({summary})"

    def to_dict(self) -> dict[str, Any]:
        """Plain Python data (JSON-ready): fractions in ``[0, 1]`` and the counts they come from."""
        data: dict[str, Any] = {"num_classes": self.num_classes, "num_samples": self.num_samples, "eps": self.eps}
        data |= {"worst_fraction": self.worst_fraction, "worst_k": self.worst_k, "attacks": list(self.attacks)}
        data["settings"] = {k: dict(v) for k, v in self.settings.items()}
        data["results"] = {
            attack: {"avg": r.avg, "worst": r.worst, "overall": r.overall, "nsd": r.nsd}
            | {"per_class": list(r.per_class), "correct": list(r.correct), "total": list(r.total)}
            for attack, r in self._results.items()
        }
        return data

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON; keyword arguments go to :func:`json.dumps` (default ``indent=2``)."""
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RobustnessReport:
        """Rebuild a report from :meth:`to_dict` (the metrics are recomputed from the counts)."""
        fraction, results = data.get("worst_fraction"), data["results"]
        summaries = {
            a: class_accuracy_summary(results[a]["correct"], results[a]["total"], worst_fraction=fraction)
            for a in data["attacks"]
        }
        num_classes, eps = int(data["num_classes"]), float(data["eps"])
        return cls(summaries, num_classes=num_classes, eps=eps, worst_fraction=fraction, settings=data.get("settings"))


def reports_to_markdown(reports: Mapping[str, RobustnessReport]) -> str:
    """Markdown tables, a row per report: Avg., Worst, Overall (%) of each attack (``-``: absent), then NSDs."""
    if not reports:
        raise ValueError("Expected `reports` to hold at least one report, but got none.")
    for name, report in reports.items():
        if not isinstance(report, RobustnessReport):
            raise TypeError(f"Expected `reports[{name!r}]` to be a RobustnessReport, but got {type(report).__name__}.")
    attacks = list(dict.fromkeys(a for report in reports.values() for a in report.attacks))
    header = ["Method", *(f"{_label(a)} {column}" for a in attacks for column in ("Avg.", "Worst", "Overall"))]
    rows: list[list[str]] = []
    nsd_rows: list[list[str]] = []
    for name, report in reports.items():
        results = [report.get(a) for a in attacks]
        cells = [[_pct(r.avg), _pct(r.worst), _pct(r.overall)] if r else ["-"] * 3 for r in results]
        rows.append([name, *(cell for group in cells for cell in group)])
        nsd_rows.append([name, *(f"{r.nsd:.4f}" if r else "-" for r in results)])
    return _table(header, rows) + "\n\n" + _table(["Method", *(f"{_label(a)} NSD" for a in attacks)], nsd_rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, the first column left-aligned and the others right-aligned."""
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
