"""`torch-absld compare`: every registered method on one harness, the paper's Table 1 layout, ABSLD paired."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from torch_absld.demo.cli import build_parser, main
from torch_absld.demo.methods import compare_methods, resolve, students
from torch_absld.methods import available, get

TINY = ["--quick", "--epochs", "2", "--teacher-epochs", "1", "--quiet", "--autoattack", "none", "--workers", "1"]


def test_compare_trains_every_registered_method_absld_last() -> None:
    assert sorted(compare_methods()) == sorted(get(name).title for name in available())
    assert compare_methods()[-1] == "ABSLD"
    assert set(compare_methods()) < set(students())  # and the demo's variants
    assert "ABSLD-product" not in students()  # the default coupling: the same as ABSLD


@pytest.mark.parametrize(("text", "name"), [("fair-ard", "Fair-ARD"), ("sat", "SAT"), ("absld", "ABSLD"), ("x", "x")])
def test_method_names_match_without_case(text: str, name: str) -> None:
    assert resolve(text) == name


def test_help_states_the_runtime_measured_in_the_docs() -> None:
    parser = build_parser()
    compare = parser._subparsers._group_actions[0].choices["compare"]  # type: ignore[union-attr]
    found = re.search(r"took ([0-9.]+) minutes on 2 CPU cores", compare.description)
    assert found is not None, compare.description
    page = (Path(__file__).resolve().parents[1] / "docs" / "methods" / "comparison.md").read_text()
    assert f"{found.group(1)} minutes on 2 cores" in page


@pytest.fixture(scope="module")
def small_comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "run"
    assert main(["compare", *TINY, "--seeds", "2", "--methods", "sat,ard,rslad,absld", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
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


@pytest.mark.slow
def test_compare_without_absld_compares_with_the_first(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["compare", *TINY, "--methods", "sat,trades", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["pairs"] == [["TRADES", "SAT"]]


def test_methods_with_a_validation_split_hold_it_out_and_evaluate_their_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from torch_absld.demo import methods, train
    from torch_absld.demo.config import DemoConfig
    from torch_absld.demo.data import StudentMLP, load_dataset
    from torch_absld.evaluation import dataset_labels

    built, create = {}, train.create

    def spy(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        built[name] = step = create(name, *args, **kwargs)
        return step

    monkeypatch.setattr(train, "create", spy)
    name, options, note = methods.VARIANTS["CFA"]  # a gate every epoch passes: the demo evaluates the average
    monkeypatch.setitem(methods.VARIANTS, "CFA", (name, {**options, "threshold": 0.0}, note))
    data, train_set, test_set = load_dataset("digits", "unused", 0)
    test_loader = DataLoader(test_set, batch_size=512)
    config = DemoConfig(epochs=2, attack_steps=2, progress=False)
    for name in ("FRL", "CFA", "BAT"):
        student = StudentMLP(data.input_shape, data.num_classes, (16,))
        run = train.distill(config, name, 0, student, nn.Linear(1, 1), train_set, test_loader, 10, data.eps)
        step = built[name.lower()]
        assert len(run["history"]["pgd_worst"]) == 2
        validation = getattr(step, "validation", None)
        if name == "BAT":
            assert validation is None  # the others train on the whole split
            continue
        images, labels = (torch.cat(parts) for parts in zip(*validation))
        train_images = torch.stack([x for x, _ in train_set]).flatten(1)
        assert all((train_images == row).all(dim=1).any() for row in images.flatten(1))  # rows of the split
        per_class, held_per_class = Counter(dataset_labels(train_set)), Counter(labels.tolist())
        assert all(abs(held_per_class[c] - 0.1 * n) <= 0.5 for c, n in per_class.items())  # a stratified 10%
        model = step.evaluation_model
        assert (model is step.fawa.module) if name == "CFA" else (model is student)
        for key, value in model.state_dict().items():
            assert torch.equal(run["last_state"][key], value), key


def test_a_method_registered_by_the_user_is_offered_and_trained_by_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from torch_absld.methods import register, unregister

    register(dataclasses.replace(get("sat"), name="toy-sat", title="ToySAT", summary="SAT under another name"))
    try:
        assert "ToySAT" in compare_methods()
        assert compare_methods()[-1] == "ABSLD"
        with pytest.raises(SystemExit):
            main(["compare", "--help"])
        assert "ToySAT" in capsys.readouterr().out
        out = tmp_path / "o"
        assert main(["compare", *TINY, "--methods", "toysat,sat", "--out", str(out)]) == 0
    finally:
        unregister("toy-sat")
    assert "ToySAT" not in compare_methods()
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["methods"] == ["ToySAT", "SAT"]
    toy, sat = (results["runs"][0]["methods"][m]["checkpoints"] for m in ("ToySAT", "SAT"))
    assert toy == sat  # the same step from the same start: the same numbers
