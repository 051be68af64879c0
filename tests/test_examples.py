"""The examples run with --smoke; resuming continues exactly; torchrun ranks agree on the temperatures."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from _cpus import emulating_cpu, native_cpu
from torch.testing import assert_close

from torch_absld import fastest_settings, methods

pytestmark = pytest.mark.slow  # the examples and benchmarks run whole: CI runs them (`-m slow`)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def quiet_torch():
    """The examples set process-wide flags; give them back afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = benchmark


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cifar_smoke_resume_continues_exactly(tmp_path, quiet_torch):
    cifar = _load("cifar_absld")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cifar.main(["--smoke", "--deterministic", "--out", str(straight)])
    cifar.main(["--smoke", "--deterministic", "--out", str(resumed), "--stop-after", "1"])
    assert len(_log(resumed / "log.jsonl")) == 1
    cifar.main(["--smoke", "--deterministic", "--out", str(resumed), "--resume", str(resumed / "last.pt")])

    want = torch.load(straight / "last.pt", weights_only=False)
    got = torch.load(resumed / "last.pt", weights_only=False)
    assert got["epoch"] == want["epoch"] == 2
    for part in ("student", "step"):
        assert got[part].keys() == want[part].keys()
        for key, value in want[part].items():
            if isinstance(value, torch.Tensor):
                assert_close(got[part][key], value, rtol=0, atol=0, msg=f"{part}.{key}")
    assert got["step"]["loss_fn.adv._extra_state"] == want["step"]["loss_fn.adv._extra_state"]  # beta, epochs
    assert got["optimizer"]["param_groups"][0]["lr"] == want["optimizer"]["param_groups"][0]["lr"]

    straight_log, resumed_log = _log(straight / "log.jsonl"), _log(resumed / "log.jsonl")
    assert [r["epoch"] for r in resumed_log] == [1, 2]
    for a, b in zip(straight_log, resumed_log, strict=True):
        assert a["tau_adv"] == b["tau_adv"]
        assert a["tau_clean"] == b["tau_clean"]
        assert a["eval"] == b["eval"]

    # The JSON-lines log: per-class temperatures and risks, beta following the lr (milestone at 1). The
    # scheduler steps first, as the authors' script: the update that ends epoch 1 already uses beta x0.1.
    first, second = straight_log
    assert len(first["tau_adv"]) == len(first["risk_adv"]) == len(first["risk_clean"]) == 10
    assert first["risk_samples"] == [64, 64]
    assert first["lr"] == pytest.approx(0.1)
    assert first["beta"] == pytest.approx(0.01)
    assert second["lr"] == pytest.approx(0.01)
    assert second["beta"] == pytest.approx(0.01)
    assert first["tau_adv"] != [1.0] * 10
    assert set(first["eval"]) == {"clean", "pgd"}
    assert (straight / "best.pt").is_file()
    best = torch.load(straight / "best.pt", weights_only=False)
    assert best["epoch"] == second["best_epoch"]


def test_cifar_smoke_mobilenet_bf16_channels_last(tmp_path, quiet_torch):
    cifar = _load("cifar_absld")
    result = cifar.main(
        [
            "--smoke",
            "--student",
            "mobilenetv2",
            "--amp",
            "bf16",
            "--channels-last",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    record = result["last"]
    assert record["epoch"] == 1
    assert all(v == v and abs(v) < 1e3 for v in [record["train_loss"], record["adv_kl"], record["clean_kl"]])
    assert record["risk_samples"] == [64, 64]


def test_cifar_needs_teacher(quiet_torch, capsys):
    cifar = _load("cifar_absld")
    with pytest.raises(SystemExit):
        cifar.parse_args(["--dataset", "cifar10"])
    assert "--teacher PATH is required" in capsys.readouterr().err


@pytest.mark.distributed
@pytest.mark.slow
def test_cifar_torchrun_two_ranks_agree(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(EXAMPLES / "cifar_absld.py"),
        "--smoke",
        "--log-all-ranks",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    rank0, rank1 = _log(tmp_path / "log.jsonl"), _log(tmp_path / "log.rank1.jsonl")
    assert [r["epoch"] for r in rank0] == [r["epoch"] for r in rank1] == [1, 2]
    for a, b in zip(rank0, rank1, strict=True):
        assert a["tau_adv"] == b["tau_adv"]
        assert a["tau_clean"] == b["tau_clean"]
        assert a["risk_adv"] == b["risk_adv"]
        assert a["risk_samples"] == [64, 64]  # each rank's 32 samples, summed by the all-reduce
        assert a["eval"] == b["eval"]
    assert rank0[0]["tau_adv"] != [1.0] * 10


@pytest.mark.distributed
@pytest.mark.slow
def test_cifar_torchrun_smoke_as_documented(tmp_path):
    """The command of the docs, as users type it: no --out; one shared folder, printed, then removed."""
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "TMPDIR": str(tmp_path)}
    command = [*launcher, "--standalone", "--nproc-per-node", "2", "examples/cifar_absld.py", "--smoke"]
    done = subprocess.run(command, cwd=EXAMPLES.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    folders = re.findall(r"smoke run: writing to (\S+) ", done.stdout)
    assert len(folders) == 1, done.stdout  # rank 0 announces the one folder every rank writes into
    assert Path(folders[0]).parent == tmp_path
    assert re.findall(r"^epoch +(\d+)", done.stdout, flags=re.MULTILINE) == ["1", "2"]
    assert f"removed {folders[0]}" in done.stdout
    assert list(tmp_path.glob("absld_smoke_*")) == []


def test_cifar_smoke_without_out_removes_its_folder(tmp_path, quiet_torch, monkeypatch, capsys):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = _load("cifar_absld").main(["--smoke", "--epochs", "1"])
    printed = capsys.readouterr().out
    assert f"smoke run: writing to {result['out']} " in printed
    assert f"removed {result['out']}" in printed
    assert not Path(result["out"]).exists()
    assert result["last"]["epoch"] == 1


def test_timm_refuses_several_processes(monkeypatch, capsys):
    pytest.importorskip("timm")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        _load("timm_absld").main(["--smoke"])
    assert "runs in one process" in capsys.readouterr().err


@pytest.mark.distributed
@pytest.mark.slow
def test_evaluate_torchrun_smoke_equals_one_process():
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    args = ["examples/evaluate.py", "--smoke", "--attacks", "clean,fgsm,pgd"]
    command = [*launcher, "--standalone", "--nproc-per-node", "2", *args]
    two = subprocess.run(command, cwd=EXAMPLES.parent, env=env, capture_output=True, text=True, timeout=300)
    one = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLES.parent, env=env, capture_output=True, text=True, timeout=300
    )
    assert two.returncode == 0, two.stderr[-4000:]
    assert one.returncode == 0, one.stderr[-4000:]
    tables = [run.stdout.split("\n(")[0] for run in (two, one)]
    assert tables[0] == tables[1]  # rank 0 alone prints the report of both shards
    assert tables[0].count("Robustness (%) on 20 samples") == 1


def test_timm_smoke_beta_follows_timm_scheduler(tmp_path, quiet_torch):
    pytest.importorskip("timm")
    example = _load("timm_absld")
    example.main(["--smoke", "--out", str(tmp_path)])
    first, second = _log(tmp_path / "log.jsonl")
    assert first["initial_lr"] == pytest.approx(0.1)  # timm's scheduler sets it
    assert first["lr"] == pytest.approx(0.1)
    assert second["lr"] == pytest.approx(0.01)  # multistep, milestone 1
    # The scheduler steps first (the authors' order): the update at the milestone already uses the new lr.
    assert first["beta"] == pytest.approx(0.1 * second["lr"] / first["initial_lr"])
    assert second["beta"] == pytest.approx(0.01)
    assert first["tau_adv"] != [1.0] * 10
    state = torch.load(tmp_path / "student.pt", weights_only=False)
    assert "0.mean" in state["student"]  # Normalize inside the model
    assert_close(state["loss_fn"]["adv.temperatures"], torch.tensor(second["tau_adv"]), atol=1e-6, rtol=0)


def test_timm_smoke_bf16(tmp_path, quiet_torch):
    pytest.importorskip("timm")
    example = _load("timm_absld")
    result = example.main(["--smoke", "--amp", "bf16", "--epochs", "1", "--out", str(tmp_path)])
    assert result["last"]["train_loss"] == result["last"]["train_loss"]  # not NaN


@pytest.mark.parametrize("name", ["cifar_absld", "timm_absld"])
@pytest.mark.parametrize(
    ("native", "argv", "want"),
    [
        (False, [], ("float32", True)),  # auto on a CPU that emulates bf16: fp32 + channels_last
        (True, [], ("bfloat16", True)),  # auto where bf16 is native
        (False, ["--amp", "bf16", "--channels-last"], ("bfloat16", True)),  # forced: as asked
        (True, ["--amp", "fp32", "--channels-last", "off"], ("float32", False)),  # the former default
    ],
)
def test_amp_auto_resolves_from_the_capability_checks(monkeypatch, name, native, argv, want):
    (native_cpu if native else emulating_cpu)(monkeypatch)
    example = _load(name)
    parser = example.build_parser()
    args = parser.parse_args(["--synthetic", *argv])
    precision, channels_last, reason = example.resolve_speed_settings(args, torch.device("cpu"))
    assert (precision, channels_last) == want
    assert ("AVX512-BF16" in reason) if native else ("emulates bf16" in reason)
    if argv[:2] == ["--amp", "bf16"]:
        assert reason.startswith("--amp bf16 (auto would pick fp32: ")


def test_cifar_smoke_prints_its_precision(tmp_path, quiet_torch, capsys):
    cifar = _load("cifar_absld")
    cifar.main(["--smoke", "--epochs", "1", "--out", str(tmp_path)])
    settings = fastest_settings("cpu", allow_fp16=True)
    dtype = str(settings.dtype).removeprefix("torch.")
    layout = "channels_last" if settings.channels_last else "contiguous"
    assert f"precision {dtype}, {layout} tensors on cpu: {settings.reason}" in capsys.readouterr().out


@pytest.mark.parametrize("name", methods.available())
def test_cifar_smoke_trains_every_method(tmp_path, quiet_torch, name):
    result = _load("cifar_absld").main(["--smoke", "--method", name, "--epochs", "1", "--out", str(tmp_path)])
    record = result["last"]
    assert record["epoch"] == 1
    assert math.isfinite(record["train_loss"])
    assert 0 <= record["train_adv_acc"] <= 1
    assert set(record["eval"]) == {"clean", "pgd"}
    assert ("tau_adv" in record) == (name in ("absld", "rslad"))
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert saved["args"]["method"] == name
    assert not any(key.startswith("student.") for key in saved["step"])  # the student is saved once


def test_cifar_smoke_resume_continues_a_baseline_exactly(tmp_path, quiet_torch):
    """FRL: its multipliers and radii, read from the held-out split, come back with the student."""
    cifar = _load("cifar_absld")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cifar.main(["--smoke", "--method", "frl", "--deterministic", "--out", str(straight)])
    cifar.main(["--smoke", "--method", "frl", "--deterministic", "--out", str(resumed), "--stop-after", "1"])
    cifar.main(["--smoke", "--method", "frl", "--deterministic", "--out", str(resumed), "--resume", "auto"])
    want = torch.load(straight / "last.pt", weights_only=False)
    got = torch.load(resumed / "last.pt", weights_only=False)
    assert got["epoch"] == want["epoch"] == 2
    assert "loss_fn.multipliers.multipliers" in want["step"]
    for part in ("student", "step"):
        assert got[part].keys() == want[part].keys()
        for key, value in want[part].items():
            if isinstance(value, torch.Tensor):
                assert_close(got[part][key], value, rtol=0, atol=0, msg=f"{part}.{key}")
    assert [r["epoch_end"] for r in _log(straight / "log.jsonl")] == [
        r["epoch_end"] for r in _log(resumed / "log.jsonl")
    ]


def test_cifar_recipe_sets_the_flags_and_explicit_flags_win():
    cifar = _load("cifar_absld")
    args = cifar.parse_args(["--method", "trades", "--recipe", "official", "--epochs", "3"])
    assert (args.epochs, args.batch_size, args.lr, args.milestones) == (3, 128, 0.1, [74])
    assert (args.eps, args.attack_step_size, args.attack_steps) == (0.031, 0.007, 10)
    assert args.out == "runs/trades"  # no teacher needed
    args = cifar.parse_args(["--method", "fair-ard", "--recipe", "official", "--teacher", "t.pt"])
    assert args.nesterov
    options = cifar.step_options(args)
    assert options["random_start"] == "uniform"
    assert (options["base"], options["beta"], options["temperature"]) == ("ard", 2.0, 30.0)
    args = cifar.parse_args(["--method", "absld", "--recipe", "absld", "--teacher", "t.pt", "--coupling", "product"])
    assert cifar.step_options(args)["coupling"] == "product"
    assert cifar.step_options(cifar.parse_args(["--smoke", "--option", "beta=3.5"]))["beta"] == 3.5


@pytest.mark.parametrize("name", methods.available())
def test_cifar_recipe_schedule_is_the_recipes_lr_at(name):
    from torch_absld.methods._recipes import recipe

    cifar = _load("cifar_absld")
    args = cifar.parse_args(["--method", name, "--recipe", "official", "--teacher", "t.pt"])
    optimizer, scheduler = cifar.sgd(args, torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)))
    want = recipe(name)
    assert len(optimizer.param_groups) == (2 if want.weight_decay_on == "weights only" else 1)
    assert optimizer.defaults["nesterov"] == want.nesterov
    for epoch in range(want.epochs):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(want.lr_at(epoch), rel=1e-12), epoch
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("source", ["official", "absld"])
@pytest.mark.parametrize("name", methods.available())
def test_cifar_recipe_options_build_every_method(name, source):
    cifar = _load("cifar_absld")
    options = cifar.step_options(cifar.parse_args(["--smoke", "--method", name, "--recipe", source]))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10))
    step = methods.create(name, net, num_classes=10, teacher=torch.nn.Linear(12, 10), **options)
    assert step.attack.config.steps == 2  # --smoke
    assert step.attack.config.random_start == options["random_start"]


def test_cifar_loss_flags_belong_to_absld(quiet_torch, capsys):
    with pytest.raises(SystemExit):
        _load("cifar_absld").parse_args(["--smoke", "--method", "trades", "--beta", "0.2"])
    assert "--beta: options of ABSLD and RSLAD, not of --method trades" in capsys.readouterr().err


def test_cifar_smoke_official_recipe(tmp_path, quiet_torch):
    result = _load("cifar_absld").main(
        ["--smoke", "--method", "frl", "--recipe", "official", "--epochs", "1", "--out", str(tmp_path)]
    )
    record = result["last"]
    assert record["lr"] == pytest.approx(0.001)  # FRL fine-tunes at 0.001
    assert len(record["epoch_end"]) == 10  # the per-class scales of FRL's epoch end
    args = torch.load(tmp_path / "last.pt", weights_only=False)["args"]
    assert (args["recipe"], args["weight_decay"], args["attack_steps"]) == ("official", 5e-4, 2)  # --smoke: 2 steps
