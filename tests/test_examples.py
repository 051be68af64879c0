"""The examples run with --smoke; resuming continues exactly; torchrun ranks agree on the temperatures."""

from __future__ import annotations

import importlib.util
import json
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

from torch_absld import fastest_settings

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
    for part in ("student", "loss_fn"):
        assert got[part].keys() == want[part].keys()
        for key, value in want[part].items():
            if isinstance(value, torch.Tensor):
                assert_close(got[part][key], value, rtol=0, atol=0, msg=f"{part}.{key}")
    assert got["loss_fn"]["adv._extra_state"] == want["loss_fn"]["adv._extra_state"]  # beta, epochs
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
    assert f"precision {dtype}, channels_last tensors on cpu: {settings.reason}" in capsys.readouterr().out
