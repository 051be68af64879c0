from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _eval_models import (
    PixelPredictor,
    blobs,
    fit,
    inputs_predicting,
    per_class_reference,
    pgd_reference,
    single_thread,
    tiny_mlp,
)
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from torch_absld import (
    BestCheckpoint,
    RobustnessReport,
    class_accuracy_summary,
    evaluate_robustness,
    reports_to_markdown,
    stratified_split,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = ("clean", "fgsm", "pgd", "cw")


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP that gets most of its 4 classes right on 40 blob images (1x3x4)."""
    x, y = blobs(40, 4)
    with single_thread():
        model = fit(tiny_mlp(12, 4), x, y)
    return model, x, y


def batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


# ---------------------------------------------------------------------------------------------
# Metrics end to end, against hand-computed values
# ---------------------------------------------------------------------------------------------


def test_clean_report_hand_computed() -> None:
    # 3 classes; predictions chosen by hand: class 0: 2/3 right, class 1: 1/1, class 2: 1/4.
    target = [0, 0, 0, 1, 2, 2, 2, 2]
    preds = [0, 0, 2, 1, 2, 0, 1, 1]
    x = inputs_predicting(preds, 3)
    loader = batches(x, torch.tensor(target), 3)
    report = evaluate_robustness(PixelPredictor(3), loader, 3, attacks=("clean",), progress=False)
    clean = report["clean"]
    assert clean.per_class == [2 / 3, 1.0, 0.25]
    assert clean.avg == 4 / 8
    assert clean.worst == 0.25
    assert clean.overall == (0.5 + 0.25) / 2
    assert report.attacks == ("clean",)
    assert report.num_samples == 8
    line = "| Model | 50.00 | 25.00 | 37.50 |"
    assert line in report.to_markdown()


def test_eps_zero_makes_every_attack_a_clean_evaluation(trained: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = trained
    report = evaluate_robustness(model, batches(x, y, 16), 4, attacks=FAST, eps=0.0, progress=False)
    preds = model(x).argmax(1).tolist()
    expected = per_class_reference(preds, y.tolist(), 4)
    for attack in FAST:
        assert report[attack].per_class == expected


@pytest.mark.parametrize(
    ("attack", "loss", "steps", "step"), [("fgsm", "ce", 1, 0.1), ("pgd", "ce", 20, 0.02), ("cw", "cw", 30, 0.02)]
)
def test_attacks_match_a_readable_reference(
    trained: tuple[nn.Module, torch.Tensor, torch.Tensor], attack: str, loss: str, steps: int, step: float
) -> None:
    """Each attack's settings (steps, step size, loss) reach the engine: counts equal a per-sample PGD loop."""
    model, x, y = trained
    eps = 0.1
    overrides = {attack: {"random_start": None}} if attack != "fgsm" else None
    if attack != "fgsm":
        overrides[attack]["step_size"] = step  # type: ignore[index]
    with single_thread():
        report = evaluate_robustness(
            model, batches(x, y, 16), 4, attacks=(attack,), eps=eps, progress=False, attack_overrides=overrides
        )
        x_adv = pgd_reference(model, x, y, eps=eps, step=step, steps=steps, loss=loss)
    preds = model(x_adv).argmax(1).tolist()
    assert report[attack].per_class == per_class_reference(preds, y.tolist(), 4)
    assert report[attack].avg < report_clean_avg(model, x, y)  # the attack does something


def report_clean_avg(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def test_attack_settings_are_the_papers_and_overridable() -> None:
    loader = batches(*blobs(8, 2), 8)
    model = tiny_mlp(12, 2)
    report = evaluate_robustness(
        model, loader, 2, attacks=("fgsm", "pgd", "cw"), progress=False, attack_overrides={"pgd": {"steps": 3}}
    )
    s = report.settings
    assert (s["fgsm"]["steps"], s["fgsm"]["step_size"], s["fgsm"]["random_start"], s["fgsm"]["objective"]) == (
        1,
        8 / 255,
        None,
        "ce",
    )
    assert (s["pgd"]["steps"], s["pgd"]["step_size"], s["pgd"]["random_start"], s["pgd"]["objective"]) == (
        3,
        2 / 255,
        "uniform",
        "ce",
    )
    assert (s["cw"]["steps"], s["cw"]["step_size"], s["cw"]["objective"]) == (30, 2 / 255, "cw")
    assert all(s[a]["eps"] == 8 / 255 for a in ("fgsm", "pgd", "cw"))


# ---------------------------------------------------------------------------------------------
# Determinism, batch invariance, model state
# ---------------------------------------------------------------------------------------------


def test_random_starts_do_not_depend_on_batch_size_or_order(
    trained: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    model, x, y = trained
    kwargs = {
        "attacks": FAST,
        "eps": 0.15,
        "progress": False,
        "attack_overrides": {"pgd": {"steps": 5}, "cw": {"steps": 5}},
    }
    with single_thread():
        first = evaluate_robustness(model, batches(x, y, 8), 4, **kwargs).to_dict()  # type: ignore[arg-type]
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
        shuffled = evaluate_robustness(model, batches(x[order], y[order], 8), 4, **kwargs).to_dict()  # type: ignore[arg-type]
        other_seed = evaluate_robustness(model, batches(x, y, 8), 4, seed=1, **kwargs).to_dict()  # type: ignore[arg-type]
    assert first == shuffled
    # The seed reaches the start: results can differ, the clean pass cannot.
    assert first["results"]["clean"] == other_seed["results"]["clean"]


def test_model_state_grad_and_global_rng_are_untouched() -> None:
    model = tiny_mlp(12, 4, dropout=True)
    model.train()
    model[1].eval()  # a submodule in its own mode
    frozen = model[1].weight
    frozen.requires_grad_(False)
    grads = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            param.grad = torch.full_like(param, 0.5)
            grads[name] = param.grad.clone()
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    with single_thread():
        evaluate_robustness(
            model, batches(*blobs(12, 4), 6), 4, attacks=FAST, progress=False, attack_overrides={"cw": {"steps": 2}}
        )
    assert [m.training for m in model.modules()] == modes
    assert frozen.requires_grad is False
    assert frozen.grad is None
    for name, param in model.named_parameters():
        if name in grads:
            assert param.requires_grad
            assert torch.equal(param.grad, grads[name])  # type: ignore[arg-type]
    assert torch.equal(torch.get_rng_state(), rng)


def test_progress_bar_can_be_switched_off(capsys: pytest.CaptureFixture[str]) -> None:
    loader = batches(*blobs(8, 2), 4)
    evaluate_robustness(tiny_mlp(12, 2), loader, 2, attacks=("clean",), progress=True)
    assert "robustness" in capsys.readouterr().err
    evaluate_robustness(tiny_mlp(12, 2), loader, 2, attacks=("clean",), progress=False)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_missing_tqdm_and_pyautoattack_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = batches(*blobs(8, 4, shape=(1, 4, 4)), 8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r'pip install "torch-absld\[eval\]", or pass progress=False'):
        evaluate_robustness(model, loader, 4, attacks=("clean",), progress=True)
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    with pytest.raises(ImportError, match=r'pip install "torch-absld\[eval\]"'):
        evaluate_robustness(model, loader, 4, attacks=("autoattack",), progress=False)


# ---------------------------------------------------------------------------------------------
# DistributedSampler shards, simulated in one process (the real 2-rank run is in test_evaluation_distributed)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_padding_is_left_out(
    trained: tuple[nn.Module, torch.Tensor, torch.Tensor], shuffle: bool
) -> None:
    model, x, y = trained
    dataset = TensorDataset(x[:37], y[:37])  # 37 = 3 * 12 + 1: the sampler pads two duplicates
    counts = torch.zeros(3, 2, 4, dtype=torch.long)
    with single_thread():
        single = evaluate_robustness(model, DataLoader(dataset, batch_size=5), 4, attacks=FAST[:3], progress=False)
        for rank in range(3):
            sampler = DistributedSampler(dataset, num_replicas=3, rank=rank, shuffle=shuffle, seed=4)
            assert len(sampler) == 13
            loader = DataLoader(dataset, batch_size=5, sampler=sampler)
            part = evaluate_robustness(model, loader, 4, attacks=FAST[:3], progress=False)
            counts += torch.tensor([[part[a].correct, part[a].total] for a in FAST[:3]])
    for i, attack in enumerate(FAST[:3]):
        assert counts[i, 1].sum() == 37
        assert class_accuracy_summary(counts[i, 0], counts[i, 1]) == single[attack]


def test_distributed_sampler_drop_last_warns() -> None:
    dataset = TensorDataset(*blobs(9, 3))
    sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=False, drop_last=True)
    with pytest.warns(UserWarning, match="drop_last=True: 1 sample"):
        report = evaluate_robustness(
            tiny_mlp(12, 3), DataLoader(dataset, batch_size=4, sampler=sampler), 3, attacks=("clean",), progress=False
        )
    assert report.num_samples == 4


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _eval(loader: object, **kwargs: object) -> RobustnessReport:
    options: dict[str, object] = {"attacks": ("clean", "fgsm"), "progress": False}
    options.update(kwargs)
    return evaluate_robustness(tiny_mlp(12, 3), loader, 3, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("loader", "kwargs", "error", "match"),
    [
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 3]))],
            {},
            ValueError,
            r"`loader` to yield labels in \[0, num_classes\) = \[0, 3\).*\[0, 3\]",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, -1, 2, 1]))],
            {},
            ValueError,
            r"`loader` to yield labels in \[0, num_classes\)",
        ),
        (
            [(torch.rand(4, 1, 3, 4) * 2, torch.tensor([0, 1, 2, 1]))],
            {},
            ValueError,
            r"`loader` to yield inputs in \[clip_min, clip_max\] = \[0.0, 1.0\]",
        ),
        ([(torch.rand(4, 1, 3, 4) - 1, torch.tensor([0, 1, 2, 1]))], {}, ValueError, r"`loader` to yield inputs in"),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0.0, 1.0, 2.0, 1.0]))],
            {},
            TypeError,
            "`loader` to yield integer class labels",
        ),
        ([(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2]))], {}, ValueError, "as many labels as inputs"),
        ([torch.rand(4, 12)], {}, TypeError, r"`loader` to yield \(input, target\) pairs"),
        (torch.rand(4, 12), {}, TypeError, "`loader` to be an iterable"),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attacks": ("clean", "pgd50")},
            ValueError,
            "`attacks` to be one of 'clean', 'fgsm', 'pgd', 'cw', 'autoattack', but got 'pgd50'",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attacks": ("pgd", "pgd")},
            ValueError,
            "`attacks` without repeats",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attacks": ()},
            ValueError,
            "`attacks` to name at least one",
        ),
        ([(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))], {"eps": -0.1}, ValueError, "`eps` >= 0, but got -0.1"),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"eps": float("nan")},
            ValueError,
            "`eps` to be finite",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attack_overrides": {"pgd": {"steps": 5}}},
            ValueError,
            "`attack_overrides` keys among the attacks",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attack_overrides": {"fgsm": {"step": 5}}},
            ValueError,
            r"`attack_overrides\['fgsm'\]` keys among",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attack_overrides": {"fgsm": {"eps": -1.0}}},
            ValueError,
            r"`attack_overrides\['fgsm'\]\['eps'\]` >= 0",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"attack_overrides": {"fgsm": {"random_start": "normal"}}},
            ValueError,
            "random_start",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"worst_fraction": 0.0},
            ValueError,
            "`worst_fraction`",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))],
            {"clip_min": 1.0},
            ValueError,
            "`clip_min` < `clip_max`",
        ),
        ([(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))], {"seed": 1.5}, TypeError, "`seed` to be an int"),
    ],
)
def test_bad_input(loader: object, kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _eval(loader, **kwargs)


def test_wrong_model_width_names_model() -> None:
    loader = [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 1]))]
    with pytest.raises(ValueError, match=r"`model` to return logits of shape \(N, num_classes\) = \(4, 5\)"):
        evaluate_robustness(tiny_mlp(12, 3), loader, 5, attacks=("clean",), progress=False)
    with pytest.raises(TypeError, match=r"`model` to be an nn\.Module"):
        evaluate_robustness(lambda x: x, loader, 3, progress=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _report(values: dict[str, tuple[list[int], list[int]]], **kwargs: object) -> RobustnessReport:
    results = {
        k: class_accuracy_summary(c, t, worst_fraction=kwargs.get("worst_fraction")) for k, (c, t) in values.items()
    }  # type: ignore[arg-type]
    return RobustnessReport(results, num_classes=len(next(iter(values.values()))[0]), eps=8 / 255, **kwargs)  # type: ignore[arg-type]


def test_report_tables_and_round_trip() -> None:
    report = _report({"clean": ([9, 6], [10, 10]), "pgd": ([5, 2], [10, 10])})
    markdown = report.to_markdown(name="ABSLD", per_class=True, class_names=["cat", "dog"])
    assert "| Method | Clean Avg. | Clean Worst | Clean Overall | PGD Avg. | PGD Worst | PGD Overall |" in markdown
    assert "| ABSLD | 75.00 | 60.00 | 67.50 | 35.00 | 20.00 | 27.50 |" in markdown
    assert "| cat | 90.00 | 50.00 |" in markdown
    assert "| dog | 60.00 | 20.00 |" in markdown
    text = str(report)
    assert "eps = 8/255" in text
    assert "Worst = the lowest class" in text
    assert text.splitlines()[2].split() == ["Clean", "75.00", "60.00", "67.50"]
    data = json.loads(report.to_json())
    assert data["results"]["pgd"]["per_class"] == [0.5, 0.2]
    again = RobustnessReport.from_dict(data)
    assert again.to_dict() == report.to_dict()
    assert list(report) == ["clean", "pgd"]
    assert len(report) == 2
    with pytest.raises(KeyError, match="No attack 'cw' in this report"):
        report["cw"]


def test_reports_to_markdown_one_row_per_method() -> None:
    rslad = _report({"clean": ([8, 7], [10, 10]), "pgd": ([6, 2], [10, 10])})
    absld = _report({"clean": ([8, 8], [10, 10])})
    table = reports_to_markdown({"RSLAD": rslad, "ABSLD": absld}).splitlines()
    assert table[2] == "| RSLAD | 75.00 | 70.00 | 72.50 | 40.00 | 20.00 | 30.00 |"
    assert table[3] == "| ABSLD | 80.00 | 80.00 | 80.00 | - | - | - |"


def test_report_worst_k_text_for_many_classes() -> None:
    report = _report({"clean": ([1] * 100, [2] * 100)})
    assert report.worst_k == 10
    assert "mean of the 10 lowest classes" in str(report)


# ---------------------------------------------------------------------------------------------
# BestCheckpoint and the stratified split
# ---------------------------------------------------------------------------------------------


def test_best_checkpoint_keeps_a_cpu_copy_of_the_best_overall(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    best = BestCheckpoint("pgd")
    # PGD overall per epoch: 0.3, 0.5, 0.5 (a tie: the earlier epoch stays), 0.4
    overall = {0: ([3, 3], [10, 10]), 1: ([5, 5], [10, 10]), 2: ([6, 4], [10, 10]), 3: ([4, 4], [10, 10])}
    improved = []
    kept = None
    for epoch, counts in overall.items():
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        improved.append(best.update(_report({"clean": ([9, 9], [10, 10]), "pgd": counts}), model, epoch))
        if epoch == 1:
            kept = model.weight.clone()
    assert improved == [True, True, False, False]
    assert best.best_epoch == 1
    assert best.best_overall == pytest.approx(0.5, abs=1e-15)
    assert best.state_dict is not None
    assert torch.equal(best.state_dict["weight"], kept)
    assert best.state_dict["weight"].device.type == "cpu"
    restored = best.load_into(nn.DataParallel(nn.Linear(3, 2)))
    assert torch.equal(restored.module.weight, kept)
    best.save(str(tmp_path / "best.pt"))
    saved = torch.load(tmp_path / "best.pt", weights_only=False)
    assert saved["epoch"] == 1
    assert torch.equal(saved["state_dict"]["weight"], kept)


def test_best_checkpoint_criteria_and_errors() -> None:
    best = BestCheckpoint("pgd", criterion="worst")
    assert best.update(_report({"pgd": ([9, 1], [10, 10])}), {"w": torch.ones(1)}, 0)
    assert not best.update(_report({"pgd": ([3, 1], [10, 10])}), {"w": torch.zeros(1)}, 1)  # same worst
    assert best.best_value == 0.1
    with pytest.raises(ValueError, match="`attack` = 'pgd'"):
        best.update(_report({"clean": ([1, 1], [2, 2])}), {}, 2)
    with pytest.raises(RuntimeError, match="call `update`"):
        BestCheckpoint().load_into(nn.Linear(1, 1))
    with pytest.raises(ValueError, match="`criterion` to be one of"):
        BestCheckpoint(criterion="best")  # type: ignore[arg-type]


def test_stratified_split_per_class_counts() -> None:
    labels = [0] * 10 + [1] * 20 + [2] * 3 + [3] * 1
    rest, held_out = stratified_split(labels, 0.2, seed=0)
    assert sorted(rest + held_out) == list(range(len(labels)))
    assert not set(rest) & set(held_out)
    assert held_out == sorted(held_out)
    # round(0.2 * n): 2, 4, round(0.6) = 1; the single-sample class stays in `rest`.
    assert [sum(labels[i] == c for i in held_out) for c in range(4)] == [2, 4, 1, 0]
    assert stratified_split(torch.tensor(labels), 0.2, seed=0) == (rest, held_out)
    assert stratified_split(labels, 0.2, seed=1) != (rest, held_out)


def test_stratified_split_of_datasets() -> None:
    x, y = blobs(30, 3)
    train, val = stratified_split(TensorDataset(x, y), 0.3, seed=0)
    assert len(val) == 9
    assert len(train) == 21
    assert sorted(int(val[i][1]) for i in range(len(val))) == [0] * 3 + [1] * 3 + [2] * 3

    class WithTargets(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
        targets = [0, 1] * 5

        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            raise AssertionError("labels must come from `targets`")

    _, held = stratified_split(WithTargets(), 0.2)
    assert len(held) == 2
    with pytest.raises(ValueError, match=r"`fraction` in \(0, 1\)"):
        stratified_split([0, 1], 1.0)


# ---------------------------------------------------------------------------------------------
# The example
# ---------------------------------------------------------------------------------------------


def test_example_smoke(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "evaluate.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Method | Clean Avg. |" in result.stdout
    data = json.loads(out.read_text())
    assert data["attacks"] == ["clean", "fgsm", "pgd", "cw", "autoattack"]
    assert data["results"]["clean"]["avg"] > data["results"]["pgd"]["avg"]
