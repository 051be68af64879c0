"""`torch-absld demo`: outputs written and parseable, determinism, paired design, one-line errors."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from torch_absld.demo.cli import main
from torch_absld.demo.config import derive_seed
from torch_absld.demo.data import digits_dataset, load_dataset
from torch_absld.demo.methods import DEFAULT_METHODS
from torch_absld.demo.plots import normalised_risk_std, style
from torch_absld.demo.report import summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("per_class_pgd.png", "temperatures.png", "risk_spread.png", "pgd_over_epochs.png")
# A tiny run: enough to exercise every code path in a few seconds.
TINY = ["--quick", "--epochs", "2", "--teacher-epochs", "1", "--quiet"]


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "torch_absld", *args], cwd=cwd, capture_output=True, text=True, timeout=1200, env=env
    )


def _strict_json(text: str) -> Any:
    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Walk a PNG's chunks, checking every CRC: an independent check that the file is a whole PNG."""
    assert data[:8] == PNG_SIGNATURE
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("quick")
    return out, _run_cli("demo", "--quick", "--quiet", "--out", str(out / "absld-demo"), cwd=out)


@pytest.mark.slow
def test_quick_writes_every_output(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --quiet: no progress output, from this process or the workers
    out = root / "absld-demo"
    assert sorted(p.name for p in out.iterdir()) == sorted(["report.md", "results.json", *PLOTS])
    for name in PLOTS:
        chunks = _png_chunks((out / name).read_bytes())
        assert chunks[0][0] == b"IHDR"
        assert chunks[-1][0] == b"IEND"
        width, height = struct.unpack(">II", chunks[0][1][:8])
        assert width > 100
        assert height > 100
    results = _strict_json((out / "results.json").read_text(encoding="utf-8"))
    assert results["methods"] == list(DEFAULT_METHODS) == ["RSLAD", "ABSLD"]
    assert [run["seed"] for run in results["runs"]] == [0]
    report = (out / "report.md").read_text(encoding="utf-8")
    for heading in ("## Verdict", "## Robustness at the best checkpoint", "## Robustness at the last epoch"):
        assert heading in report
    assert "| Method | Clean Avg. | Clean Worst | FGSM Avg. | FGSM Worst | PGD-20 Avg. | PGD-20 Worst |" in report
    assert "| Method | FGSM Overall | FGSM NSD | PGD-20 Overall | PGD-20 NSD |" in report
    assert "## Paired differences ABSLD − RSLAD" in report
    assert "## Teachers (training split)" in report
    for name in PLOTS:
        assert f"({name})" in report
    assert results["verdict"][0] in proc.stdout
    assert "95%" not in report  # one seed: no interval anywhere
    assert "95%" not in proc.stdout
    assert "no interval" in results["verdict"][-1]


@pytest.mark.slow
def test_quick_results_are_consistent(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, proc = quick_run
    assert proc.returncode == 0, proc.stderr
    results = _strict_json((root / "absld-demo" / "results.json").read_text(encoding="utf-8"))
    epochs, num_classes = results["config"]["epochs"], results["dataset"]["num_classes"]
    run = results["runs"][0]["methods"]
    for method in results["methods"]:
        history = run[method]["history"]
        assert len(history["tau_adv"]) == len(history["risk_clean"]) == epochs
        for checkpoint in ("best", "last"):
            scores = run[method]["checkpoints"][checkpoint]
            assert list(scores) == ["clean", "fgsm", "pgd", "cw", "autoattack"]
            for attack in scores.values():
                per_class = np.array(attack["per_class"])
                assert len(per_class) == num_classes
                assert attack["worst"] == pytest.approx(per_class.min())
                assert attack["overall"] == pytest.approx((attack["avg"] + attack["worst"]) / 2)
                assert attack["nsd"] == pytest.approx(per_class.std(ddof=0) / per_class.mean())
            # AutoAttack's first two attacks are at least as strong as PGD-20's CE.
            assert scores["autoattack"]["avg"] <= scores["pgd"]["avg"] + 0.02
        # The best checkpoint was selected on the per-epoch PGD-20 Overall.
        assert history["pgd_overall"][run[method]["best_epoch"]] == pytest.approx(max(history["pgd_overall"]))
    # RSLAD's temperatures never move; ABSLD's stay in [0.5, 5] and do move.
    assert all(
        t == 1.0 for row in run["RSLAD"]["history"]["tau_adv"] + run["RSLAD"]["history"]["tau_clean"] for t in row
    )
    tau = np.array(run["ABSLD"]["history"]["tau_adv"] + run["ABSLD"]["history"]["tau_clean"])
    assert tau.min() >= 0.5 - 1e-6
    assert tau.max() <= 5.0 + 1e-6
    assert tau.std() > 0
    # Same initial weights, data order and attack noise: epoch 1 (all temperatures 1) is identical.
    for key in ("risk_adv", "risk_clean", "loss"):
        assert run["RSLAD"]["history"][key][0] == run["ABSLD"]["history"][key][0]
    # The paired difference is the method minus RSLAD, of the same seed.
    assert results["pairs"] == [["ABSLD", "RSLAD"]]
    paired = results["paired"]["best"]["ABSLD − RSLAD"]["pgd"]["worst"]
    expected = run["ABSLD"]["checkpoints"]["best"]["pgd"]["worst"] - run["RSLAD"]["checkpoints"]["best"]["pgd"]["worst"]
    assert paired["differences"] == [pytest.approx(expected)]
    teacher = results["runs"][0]["teacher"]
    assert set(teacher) == {"scores", "statistics"}
    assert 0 <= teacher["statistics"]["ece"] <= 1


def _numbers(path: Path) -> dict[str, Any]:
    results = json.loads((path / "results.json").read_text(encoding="utf-8"))
    for key in ("date", "seconds", "workers"):
        results.pop(key)
    for run in results["runs"]:
        for method in run["methods"].values():
            method.pop("seconds")
    return results


# Two seeds, three students each, no AutoAttack: every path of the pool and the statistics, in seconds.
TWO_SEEDS = [*TINY, "--seeds", "2", "--autoattack", "none", "--methods", "RSLAD,ABSLD,ABSLD-separate"]


@pytest.fixture(scope="module")
def tiny_in_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run with the jobs run one after the other in this process."""
    out = tmp_path_factory.mktemp("tiny") / "serial"
    threads = torch.get_num_threads()
    assert main(["demo", *TWO_SEEDS, "--workers", "1", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # the demo's thread setting is restored
    return out


@pytest.mark.slow
def test_same_seed_same_numbers(tiny_in_process: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *TWO_SEEDS, "--workers", "1", "--out", str(tmp_path / "b")]) == 0
    assert main(["demo", *TWO_SEEDS, "--workers", "1", "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    first, second, shifted = _numbers(tiny_in_process), _numbers(tmp_path / "b"), _numbers(tmp_path / "c")
    assert first == second
    # Run seed 1 is the same whether it is the second run of --seed 0 or the first of --seed 1.
    assert first["runs"][1] == shifted["runs"][0]
    assert first["verdict"][0] in capsys.readouterr().out


def test_each_seed_draws_its_own_split_and_teacher(tiny_in_process: Path) -> None:
    runs = _numbers(tiny_in_process)["runs"]
    assert runs[0]["teacher"] != runs[1]["teacher"]
    _, train_0, _ = load_dataset("digits", "unused", derive_seed(0, "split"))
    _, train_1, _ = load_dataset("digits", "unused", derive_seed(1, "split"))
    assert train_0.indices != train_1.indices


def test_summary_statistics_match_an_independent_computation(tiny_in_process: Path) -> None:
    results = json.loads((tiny_in_process / "results.json").read_text(encoding="utf-8"))
    t_975_df1 = 12.706204736  # Student's t, two-sided 95%, one degree of freedom (two seeds)
    for checkpoint in ("best", "last"):
        for method in ("ABSLD", "ABSLD-separate"):
            for metric in ("avg", "worst", "overall", "nsd"):
                d = np.array(
                    [
                        run["methods"][method]["checkpoints"][checkpoint]["cw"][metric]
                        - run["methods"]["RSLAD"]["checkpoints"][checkpoint]["cw"][metric]
                        for run in results["runs"]
                    ]
                )
                got = results["paired"][checkpoint][f"{method} − RSLAD"]["cw"][metric]
                half = t_975_df1 * d.std(ddof=1) / math.sqrt(2)
                assert got["mean"] == pytest.approx(d.mean(), abs=1e-12)
                assert got["low"] == pytest.approx(d.mean() - half, abs=1e-9)
                assert got["high"] == pytest.approx(d.mean() + half, abs=1e-9)
                assert got["wins"] == int((d > 1e-9).sum())


@pytest.mark.slow
def test_worker_processes_give_the_same_numbers(
    tiny_in_process: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each teacher and each (seed, method) student in a spawned process, teachers sent as state dicts.
    loud = [a for a in TWO_SEEDS if a != "--quiet"]
    assert main(["demo", *loud, "--workers", "2", "--out", str(tmp_path / "w")]) == 0
    captured = capsys.readouterr()
    lines = [line.strip() for line in captured.err.replace("\r", "\n").splitlines()]
    finished = sorted(line.split(":")[0] for line in lines if line.startswith("seed "))
    expected = [f"seed {s} {m}" for s in (0, 1) for m in ("ABSLD", "ABSLD-separate", "RSLAD", "teacher")]
    assert finished == sorted(expected)  # one progress line per finished job
    assert "seed 0" not in captured.out  # stdout holds only the results
    parallel = json.loads((tmp_path / "w" / "results.json").read_text(encoding="utf-8"))
    serial = json.loads((tiny_in_process / "results.json").read_text(encoding="utf-8"))
    assert (serial["workers"], parallel["workers"]) == (1, 2)
    assert "2 processes of 1 thread on cpu" in (tmp_path / "w" / "report.md").read_text(encoding="utf-8")
    first, second = _numbers(tiny_in_process), _numbers(tmp_path / "w")
    assert first["runs"][0]["methods"]["RSLAD"]["history"]["loss"]  # something to compare
    assert first == second


def test_default_workers_follow_the_usable_cpus() -> None:
    from torch_absld.demo.experiment import default_workers

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert default_workers(1) == 1
    assert default_workers(1000) == cpus
    assert default_workers(1000, threads=cpus) == 1
    assert default_workers(1000, threads=2 * cpus) == 1
    assert default_workers(2) == min(2, cpus)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "imagenet"], "unknown --dataset 'imagenet'; choose one of digits, mnist, cifar10"),
        (["--seeds", "0"], "Expected seeds to be an integer >= 1, but got 0."),
        (["--methods", "RSLAD,XYZ"], "Expected methods to be two or more distinct names from"),
        (["--methods", "RSLAD"], "but got RSLAD."),
        (["--autoattack", "full"], "argument --autoattack: invalid choice: 'full'"),
        (["--out", "{file}/sub"], "cannot write to --out"),
        (["--device", "meta"], "--device 'meta' cannot train: pass cpu, cuda or cuda:N"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = [a.replace("{file}", str(blocker)) for a in args]
    proc = _run_cli("demo", *TINY, *args, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("torch-absld")
    assert message in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "absld-demo").exists()


def test_other_bad_input_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o")
    assert main(["demo", *TINY, "--out", out, "--eps", "2"]) == 2
    assert main(["demo", *TINY, "--out", out, "--device", "banana"]) == 2
    assert main(["demo", *TINY, "--out", out, "--workers", "0"]) == 2
    for argv in ([], ["demo", "--epochs", "x"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 5
    assert errors[0] == "torch-absld demo: error: Expected eps in (0, 1], but got 2.0."
    assert "banana" in errors[1]
    assert errors[2] == "torch-absld demo: error: Expected workers to be an integer >= 1 or None, but got 0."
    assert errors[3] == "torch-absld: error: choose a command: demo or compare (see --help)"
    assert "argument --epochs: invalid int value: 'x'" in errors[4]
    assert not Path(out).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *TINY, "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert (
        capsys.readouterr().err
        == "torch-absld demo: error: --device 'cuda' but CUDA is not available on this machine\n"
    )


def test_digits_dataset_and_split() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    data = digits_dataset()
    image, label = data[5]
    assert image.shape == (1, 8, 8)
    assert image.dtype == torch.float32
    assert label.dtype == torch.long
    torch.testing.assert_close(image.flatten(), torch.tensor(raw.data[5], dtype=torch.float32) / 16)
    assert int(label) == int(raw.target[5])
    assert float(data.tensors[0].min()) == 0.0
    assert float(data.tensors[0].max()) == 1.0
    spec, train, test = load_dataset("digits", "unused", 0)
    assert (spec.num_classes, spec.input_shape, spec.eps) == (10, (1, 8, 8), 0.1)
    assert sorted(train.indices + test.indices) == list(range(len(raw.target)))
    per_class = Counter(raw.target.tolist())
    train_counts = Counter(raw.target[train.indices].tolist())
    for c, n in per_class.items():
        assert abs(train_counts[c] - n / 2) <= 0.5  # stratified 50/50
    _, again, _ = load_dataset("digits", "unused", 0)
    assert again.indices == train.indices


def test_unknown_dataset_raises() -> None:
    with pytest.raises(ValueError, match="Expected `--dataset` to be one of digits, mnist, cifar10, but got 'svhn'"):
        load_dataset("svhn", "unused", 0)


def test_normalised_risk_std_against_hand_values() -> None:
    risk = np.array([[1.0, 2.0, 3.0], [2.0, np.nan, 2.0]])
    # Epoch 1: risk / mean = [0.5, 1, 1.5], population std = sqrt(1/6); epoch 2: one class unseen, others equal.
    np.testing.assert_allclose(normalised_risk_std(risk), [math.sqrt(1 / 6), 0.0])


def _fake_results(worst: dict[str, list[float]]) -> dict[str, Any]:
    def scores(w: float) -> dict[str, Any]:
        per_class = [w, 0.9]
        nsd = float(np.std(per_class) / np.mean(per_class))
        return {"pgd": {"avg": 0.7, "worst": w, "overall": (0.7 + w) / 2, "nsd": nsd, "per_class": per_class}}

    history = {"tau_adv": [[1.0, 1.0]], "tau_clean": [[1.0, 1.0]]}
    runs = [
        {
            "seed": seed,
            "tables": {"best": "", "last": ""},
            "methods": {
                m: {"checkpoints": {"best": scores(v[i]), "last": scores(v[i])}, "best_epoch": 0, "history": history}
                for m, v in worst.items()
            },
        }
        for i, seed in enumerate(range(len(worst["RSLAD"])))
    ]
    methods = list(worst)
    return {
        "methods": methods,
        "pairs": [[m, methods[0]] for m in methods[1:]],
        "runs": runs,
        "config": {"autoattack": "none"},
    }


def test_verdict_says_plainly_when_absld_does_not_win() -> None:
    results = _fake_results({"RSLAD": [0.40, 0.50, 0.30], "ABSLD": [0.30, 0.50, 0.35]})
    summary = summarize(results)
    paired = summary["paired"]["best"]["ABSLD − RSLAD"]["pgd"]["worst"]
    assert paired["differences"] == pytest.approx([-0.10, 0.0, 0.05])
    assert (paired["wins"], paired["ties"], paired["losses"]) == (1, 1, 1)
    assert paired["mean"] == pytest.approx(-0.05 / 3)
    assert paired["std"] == pytest.approx(float(np.std([-0.10, 0.0, 0.05], ddof=1)))
    verdict = summary["verdict"][0]
    assert verdict.startswith("ABSLD vs RSLAD under PGD-20: worst class -1.7 [")
    assert "(1 of 3 seeds better, sign test p = 1.00)" in verdict
    assert verdict.endswith(
        "Worst class at the last epoch: no clear effect (the 95% interval contains zero); at the best checkpoint: "
        "no clear effect (the 95% interval contains zero)."
    )


def test_verdict_when_absld_wins_everywhere() -> None:
    results = _fake_results({"RSLAD": [0.40, 0.50, 0.45], "ABSLD": [0.45, 0.60, 0.52]})
    summary = summarize(results)
    verdict = summary["verdict"][0]
    assert verdict.startswith("ABSLD vs RSLAD under PGD-20: worst class +7.3 [")
    assert "(3 of 3 seeds better, sign test p = 0.25)" in verdict
    assert "Worst class at the last epoch: a clear gain (the 95% interval lies above zero)" in verdict
    assert summary["summary"]["best"]["RSLAD"]["pgd"]["worst"]["mean"] == pytest.approx(0.45)
    assert summary["summary"]["best"]["ABSLD"]["pgd"]["per_class"] == pytest.approx([0.5233333, 0.9])


@pytest.mark.parametrize("name", ["digits", "mnist", "cifar10"])
def test_models_fit_every_registered_dataset(name: str) -> None:
    from torch_absld.demo.data import DATASETS, StudentMLP, TeacherCNN

    spec = DATASETS[name]
    x = torch.rand(3, *spec.input_shape)
    assert TeacherCNN(spec.input_shape, spec.num_classes)(x).shape == (3, spec.num_classes)
    student = StudentMLP(spec.input_shape, spec.num_classes)
    assert student(x).shape == (3, spec.num_classes)
    widths = [m.out_features for m in student if isinstance(m, torch.nn.Linear)]
    assert widths == [64, spec.num_classes]  # MLP 64-64-10 on digits: 64 pixels, 64 hidden, 10 outputs


def test_missing_extra_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    assert main(["demo", *TINY, "--out", str(tmp_path / "o")]) == 2
    assert (
        capsys.readouterr().err
        == 'torch-absld demo: error: the demo needs matplotlib: pip install "torch-absld[demo]"\n'
    )
    assert not (tmp_path / "o").exists()


def test_missing_autoattack_is_found_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch_absld.demo.experiment as experiment

    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    monkeypatch.setattr(experiment, "run_demo", lambda *args, **kwargs: pytest.fail("trained without pyautoattack"))
    assert main(["demo", *TINY, "--autoattack", "apgd", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        'torch-absld demo: error: the demo needs pyautoattack: pip install "torch-absld[demo]"\n'
    )
    assert not (tmp_path / "o").exists()


def test_autoattack_checks_are_kept_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from torch_absld.demo import train
    from torch_absld.demo.report import _autoattack_checks

    def fake_evaluate(*args: Any, **kwargs: Any) -> str:
        warnings.warn_explicit(
            "Square Attack has decreased the robust accuracy of 0.26%.", Warning, "/x/pyautoattack/checks.py", 77
        )
        warnings.warn("something else", UserWarning, stacklevel=1)
        return "report"

    monkeypatch.setattr(train, "evaluate_robustness", fake_evaluate)
    with pytest.warns(UserWarning, match="something else") as caught:
        report, checks = train.evaluate(torch.nn.Linear(2, 2), [], 2, 0.1, autoattack="standard")
    assert report == "report"
    assert checks == ["Square Attack has decreased the robust accuracy of 0.26%."]
    assert all("Square" not in str(w.message) for w in caught)
    results = _fake_results({"RSLAD": [0.4], "ABSLD": [0.5]})
    results["runs"][0]["methods"]["ABSLD"]["autoattack_checks"] = {"best": [], "last": checks}
    lines = _autoattack_checks(results)
    assert lines[0].startswith("AutoAttack's own checks flagged 1 of 4 evaluations")
    assert lines[-1] == "- seed 0, ABSLD, last: Square Attack has decreased the robust accuracy of 0.26%."


@pytest.mark.parametrize("command", ["demo", "compare"])
def test_help_prints_a_plain_percent_sign(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "95% confidence interval" in text
    assert "%%" not in text


def test_one_seed_verdict_says_there_is_no_interval() -> None:
    verdict = summarize(_fake_results({"RSLAD": [0.4], "ABSLD": [0.5]}))["verdict"]
    assert "worst class +10.0 points at the last epoch (1 of 1 seeds better" in verdict[0]
    assert verdict[0].endswith(
        "Worst class at the last epoch: no interval with 1 seed; at the best checkpoint: no interval with 1 seed."
    )
    assert verdict[-1].startswith("One seed: the differences of that seed, with no interval")
    assert not any("95%" in line or "Student-t" in line for line in verdict)


def test_every_method_gets_its_own_colour_and_marker_and_absld_stands_out() -> None:
    names = [f"m{i}" for i in range(9)] + ["ABSLD"]
    assert len({style(names, n)["color"] for n in names}) == len({style(names, n)["marker"] for n in names}) == 10
    more = [*names, "x", "y", "z"]
    assert len({(style(more, n)["color"], style(more, n)["marker"]) for n in more}) == len(more)
    assert style(names, "ABSLD")["linewidth"] > style(names, "m0")["linewidth"]
    assert style(names, "ABSLD")["markeredgecolor"] == "black"


def test_frozen_logits_read_the_teachers_own_numbers_and_run_it_for_anything_else() -> None:
    from torch_absld.demo.data import TeacherCNN
    from torch_absld.demo.train import FrozenLogits

    torch.manual_seed(0)
    teacher = TeacherCNN((1, 8, 8), 10).eval().requires_grad_(False)
    images = torch.rand(700, 1, 8, 8)  # more than one chunk of 512
    table = FrozenLogits(teacher, images)
    batch = images[torch.randperm(700)[:64]]
    with torch.no_grad():
        assert torch.equal(table(batch), teacher(batch))  # the numbers the teacher returns for that batch
        assert torch.equal(table(batch[:5]), teacher(batch[:5]))
        calls = Counter[str]()
        teacher.register_forward_hook(lambda *_: calls.update(["teacher"]))
        table(batch)
        assert calls["teacher"] == 0  # read from the table
        other = batch.clone()
        other[3, 0, 0, 0] += 1e-3  # one row not in the table: the whole batch runs the teacher
        assert torch.equal(table(other), teacher(other))
        assert calls["teacher"] == 2
    x = batch.clone().requires_grad_(True)  # an input the caller differentiates: through the teacher
    (grad,) = torch.autograd.grad(table(x).sum(), x)
    (expected,) = torch.autograd.grad(teacher(x).sum(), x)
    assert torch.equal(grad, expected)


def test_batches_are_the_data_loaders_own_from_the_same_random_draws() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from torch_absld.demo.data import batches, in_memory
    from torch_absld.evaluation import stratified_split

    base = TensorDataset(torch.rand(101, 1, 4, 4), torch.arange(101) % 5)
    subset, _ = stratified_split(base, 0.7, seed=3)
    nested, _ = stratified_split(subset, 0.8, seed=4)  # a Subset of a Subset, as the held-out split
    for dataset in (base, subset, nested):
        assert in_memory(dataset) is not None
        for shuffle in (False, True):
            torch.manual_seed(11)
            loader = batches(dataset, 16, shuffle=shuffle, generator=torch.Generator().manual_seed(5))
            ours = [list(batch) for _ in range(3) for batch in loader]  # three epochs
            after_ours = torch.rand(1)  # the global generator advanced as the data loader advances it
            torch.manual_seed(11)
            reference = DataLoader(dataset, 16, shuffle=shuffle, generator=torch.Generator().manual_seed(5))
            theirs = [list(batch) for _ in range(3) for batch in reference]
            assert torch.equal(after_ours, torch.rand(1))
            assert len(ours) == len(theirs)
            for (x, y), (u, v) in zip(ours, theirs):
                assert torch.equal(x, u)
                assert torch.equal(y, v)
                assert y.dtype == v.dtype
    assert in_memory([(torch.zeros(1), 0)]) is None  # type: ignore[arg-type]
