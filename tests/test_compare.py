"""`torch-absld compare`: every registered method on one harness, the paper's Table 1 layout, ABSLD paired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torch_absld.demo.cli import build_parser, main
from torch_absld.demo.methods import COMPARE_METHODS, METHODS, resolve_method
from torch_absld.methods import available

TINY = ["--quick", "--epochs", "2", "--teacher-epochs", "1", "--quiet", "--autoattack", "none", "--workers", "1"]


def test_every_registered_method_can_be_compared() -> None:
    registered = {spec.method for spec in METHODS.values()}
    assert set(available()) <= registered
    assert {METHODS[name].method for name in COMPARE_METHODS} == set(available())
    assert COMPARE_METHODS[-1] == "ABSLD"


@pytest.mark.parametrize(("text", "name"), [("fair-ard", "Fair-ARD"), ("sat", "SAT"), ("absld", "ABSLD"), ("x", "x")])
def test_method_names_match_without_case(text: str, name: str) -> None:
    assert resolve_method(text) == name


def test_help_states_the_measured_runtime() -> None:
    parser = build_parser()
    compare = parser._subparsers._group_actions[0].choices["compare"]  # type: ignore[union-attr]
    assert "took" in compare.description
    assert "minutes on 2 CPU cores" in compare.description


@pytest.fixture(scope="module")
def small_comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "run"
    assert main(["compare", *TINY, "--seeds", "2", "--methods", "sat,ard,rslad,absld", "--out", str(out)]) == 0
    return out


def test_compare_pairs_absld_with_every_other_method(small_comparison: Path) -> None:
    results = json.loads((small_comparison / "results.json").read_text(encoding="utf-8"))
    assert results["command"] == "compare"
    assert results["methods"] == ["SAT", "ARD", "RSLAD", "ABSLD"]
    assert results["pairs"] == [["ABSLD", "SAT"], ["ABSLD", "ARD"], ["ABSLD", "RSLAD"]]
    for run in results["runs"]:
        history = run["methods"]
        assert "tau_adv" not in history["SAT"]["history"]  # no temperatures outside ABSLD / RSLAD
        assert len(history["ABSLD"]["history"]["tau_adv"]) == 2
        for method in results["methods"]:
            assert list(history[method]["checkpoints"]["last"]) == ["clean", "fgsm", "pgd", "cw"]
    got = results["paired"]["last"]["ABSLD − ARD"]["pgd"]["avg"]["differences"]
    want = [
        run["methods"]["ABSLD"]["checkpoints"]["last"]["pgd"]["avg"]
        - run["methods"]["ARD"]["checkpoints"]["last"]["pgd"]["avg"]
        for run in results["runs"]
    ]
    assert got == pytest.approx(want)
    report = (small_comparison / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# torch-absld compare: SAT, ARD, RSLAD, ABSLD on digits")
    assert "## Paired differences ABSLD − SAT" in report
    assert "| SAT | " in report


def test_compare_without_absld_compares_with_the_first(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["compare", *TINY, "--methods", "sat,trades", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["pairs"] == [["TRADES", "SAT"]]
