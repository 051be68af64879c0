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
from _models import tiny_batch, tiny_cnn
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from torch_absld import (
    RobustnessReport,
    class_accuracy_summary,
    evaluate_robustness,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = ("clean", "fgsm", "pgd", "cw")
C = 5


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
            r"batch 0 of `loader`: Expected `target` values in \[0, 3\).*\[0, 3\]",
        ),
        (
            [(torch.rand(4, 1, 3, 4) * 2, torch.tensor([0, 1, 2, 1]))],
            {},
            ValueError,
            r"`loader`: Expected `input` values in \[clip_min, clip_max\] = \[0.0, 1.0\]",
        ),
        (
            [(torch.rand(4, 1, 3, 4) - 1, torch.tensor([0, 1, 2, 1]))],
            {},
            ValueError,
            r"`loader`: Expected `input` values in",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0.0, 1.0, 2.0, 1.0]))],
            {},
            TypeError,
            "`loader`: Expected `target` to hold integer class indices",
        ),
        (
            [(torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2]))],
            {},
            ValueError,
            r"`loader`: Expected `target` of shape \(N,\) with N = 4",
        ),
        ([torch.rand(4, 12)], {}, TypeError, r"`loader`: Expected \(input, target\) pairs"),
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


def test_evaluation_inside_inference_mode_equals_outside():
    from torch_absld import evaluate_robustness

    model = tiny_cnn(C)
    loader = [tiny_batch(10, C, seed=s) for s in range(2)]
    attacks = ("clean", "fgsm", "pgd", "cw")
    overrides = {"pgd": {"steps": 3}, "cw": {"steps": 3}}
    want = evaluate_robustness(model, loader, C, attacks, progress=False, attack_overrides=overrides)
    with torch.inference_mode():
        got = evaluate_robustness(model, loader, C, attacks, progress=False, attack_overrides=overrides)
    assert got.to_dict() == want.to_dict()
