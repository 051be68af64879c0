"""Bad and unusual inputs to `RobustnessReport` and `reports_to_markdown`."""

from __future__ import annotations

import pytest
from _cases import Case, bad, ids, run

from torch_absld import RobustnessReport, class_accuracy_summary, reports_to_markdown

RESULT = class_accuracy_summary([1, 2], [2, 2])


def _report(**kwargs: object) -> RobustnessReport:
    options: dict[str, object] = {"num_classes": 2, "eps": 8 / 255}
    options.update(kwargs)
    results = options.pop("results", {"clean": RESULT})
    return RobustnessReport(results, **options)  # type: ignore[arg-type]


CASES: list[Case] = [
    bad("eps=-1", ValueError, "`eps` >= 0", lambda: _report(eps=-1.0)),
    bad("num_classes=0", ValueError, "`num_classes` >= 1", lambda: _report(num_classes=0, results={})),
    bad("results of another C", ValueError, r"`results\['clean'\]` to have 3 classes", lambda: _report(num_classes=3)),
    bad("results empty", ValueError, "`results` to hold at least one attack", lambda: _report(results={})),
    bad(
        "results a dict",
        TypeError,
        r"`results\['clean'\]` to be a ClassAccuracyResult",
        lambda: _report(results={"clean": {"avg": 1}}),
    ),
    bad("worst_fraction=2", ValueError, r"`worst_fraction` in \(0, 1\]", lambda: _report(worst_fraction=2.0)),
    bad("settings a list", TypeError, "`settings` to be a mapping", lambda: _report(settings=[1])),
    bad(
        "class_names of another length",
        ValueError,
        "`class_names` of length 2",
        lambda: _report().to_markdown(per_class=True, class_names=["a"]),
    ),
    bad(
        "reports_to_markdown empty",
        ValueError,
        "`reports` to hold at least one report",
        lambda: reports_to_markdown({}),
    ),
    bad(
        "reports_to_markdown of a dict",
        TypeError,
        r"`reports\['a'\]` to be a RobustnessReport",
        lambda: reports_to_markdown({"a": {"clean": RESULT}}),
    ),  # type: ignore[dict-item]
]


def _is_int(value: object) -> None:
    assert type(value) is int


def _is_float(value: object) -> None:
    assert type(value) is float


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
