"""Smoke runs of the benchmark scripts, and checks that what they compare against is faithful."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDLoss, ClassTemperatureController, KLPGDAttack, absld_loss, bf16_support, fastest_settings

pytestmark = pytest.mark.slow  # the examples and benchmarks run whole: CI runs them (`-m slow`)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Import a benchmark script by name; restore the thread count and RNG it changes."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads, rng = torch.get_num_threads(), torch.get_rng_state()

    def _load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"absld_benchmark_{name}", BENCHMARKS / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        return module

    yield _load
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)


def _table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| --")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.parametrize(
    ("script", "expected_rows"),
    [
        ("overhead", ["RSLAD: frozen temperatures, no risk recording", "ABSLD (default)", "10", "100"]),
        ("vs_authors", ["authors' loop (fp32, eager)", "torch-absld default (fp32, eager)", "AUTO"]),
        ("vs_torchattacks", ["torchattacks.PGD", "KLPGDAttack (CE), default"]),
        ("memory", ["RSLAD: frozen temperatures, no risk recording", "ABSLD (default)"]),
        ("gpu_throughput", ["fp32", "bf16", "AUTO"]),
        ("profile_compile", ["attack", "backward", "compiled, profiled"]),
    ],
)
def test_script_quick_run_prints_its_table(load, capsys, script, expected_rows):
    load(script).main(["--quick"])
    out = capsys.readouterr().out
    assert "- torch " in out
    assert "- command: `python " in out
    _assert_machine_header(out)
    assert "Load average at end" in out
    rows = _table_rows(out)
    first_cells = {row[0] for row in rows}
    auto = f"auto ({_auto_label()}), eager"
    for name in expected_rows:
        name = {"AUTO": f"torch-absld {auto}" if script == "vs_authors" else auto}.get(name, name)
        assert name in first_cells, f"{name!r} missing from the {script} table:\n{out}"
    numbers = re.findall(r"\d+\.\d+|nan|inf", " ".join(" ".join(row[1:]) for row in rows))
    assert numbers
    assert "nan" not in numbers
    assert "inf" not in numbers


def test_version_comparison_loads_both_versions_side_by_side(load, capsys):
    """``vs_version`` exports the package at a git revision under another name and times both versions."""
    import subprocess

    root = BENCHMARKS.parent
    if subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: vs_version exports the earlier version with git archive")
    load("vs_version").main(["--ref", "HEAD", "--quick"])
    out = capsys.readouterr().out
    _assert_machine_header(out)
    first_cells = {row[0] for row in _table_rows(out)}
    for kind in ("KLPGDAttack (CE)", "ABSLD step"):
        assert f"{kind}, at HEAD" in first_cells
        assert f"{kind}, this checkout" in first_cells
    assert not [name for name in sys.modules if name.startswith("torch_absld_HEAD")], "the export stays loaded"


def _auto_label() -> str:
    # channels_last on CPUs where oneDNN runs AVX-512, as fastest_settings decides (tests/test_precision.py pins it).
    settings = fastest_settings("cpu")
    dtype = "bf16" if bf16_support("cpu").native else "fp32"
    return f"{dtype} + channels_last" if settings.channels_last else dtype


def _assert_machine_header(out: str) -> None:
    """The machine a number came from: CPU model, bf16 / AMX capability, threads, load."""
    assert "- CPU: " in out
    assert "logical cores, torch threads 1" in out
    assert re.search(r"- CPU bf16 capability: AVX-512 (yes|no), AVX512-BF16 (yes|no), AMX-BF16 (yes|no)", out)
    native = "native" if bf16_support("cpu").native else "NOT native"
    assert f"- bf16 on this device: {native} (" in out
    assert "- precision='auto' picks: " in out
    assert "- load average at start (1/5/15 min): " in out


def test_gpu_suite_quick_on_cpu_runs_every_check(load, tmp_path, capsys):
    suite = load("gpu_suite")
    out = tmp_path / "suite.md"
    assert suite.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    report = out.read_text()
    _assert_machine_header(report)
    assert "- command: `python benchmarks/gpu_suite.py --device cpu --quick --out " in report
    rows = {row[0]: row for row in _table_rows(report)}
    names = [check.name for check in suite.CHECKS]
    assert names == ["cuda-tests", "amp", "throughput", "compile", "vs-authors", "vs-torchattacks", "flops"]
    for name in names:
        assert rows[name][1] == "ok", f"{name}: {rows[name]}\n{report}"
    assert "skipped" in rows["cuda-tests"][3]  # no GPU here: collected and skipped, not missing
    assert "0 graph breaks, 0 recompiles" in rows["compile"][3]
    data = json.loads(out.with_suffix(".json").read_text())
    assert [c["check"] for c in data["checks"]] == names
    assert data["machine"]["bf16_native"] == bf16_support("cpu").native
    throughput = data["checks"][2]["data"]
    assert throughput["rows"][0]["configuration"] == "fp32"
    assert {"fp32", "bf16"} <= {r["configuration"] for r in throughput["rows"]}
    assert data["checks"][3]["data"]["compiled_images_per_s"] > 0


def test_gpu_suite_reports_failures_and_timeouts_and_goes_on(load, tmp_path):
    suite = load("gpu_suite")

    def fails(ctx):
        raise ValueError("broken on purpose")

    def hangs(ctx):
        while True:
            time.sleep(0.01)

    def works(ctx):
        return suite.Result("fine", "detail", {"deadline_in_future": ctx.deadline > time.perf_counter()})

    checks = [suite.Check("a", 1, fails), suite.Check("b", 1, hangs), suite.Check("c", 1, works)]
    args = suite.build_parser().parse_args(["--device", "cpu", "--out", str(tmp_path / "r.md"), "--budget-s", "3"])
    header = {"command": "test", "machine": {}, "budget_s": 3.0}
    records = suite.run_checks(suite.Context(args, torch.device("cpu")), checks, tmp_path / "r.md", header)
    assert [r["status"] for r in records] == ["failed", "timeout", "ok"]
    assert "ValueError: broken on purpose" in records[0]["summary"]
    assert 1 < records[1]["seconds"] < 4
    assert records[2]["data"] == {"deadline_in_future": True}
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [c["status"] for c in saved["checks"]] == ["failed", "timeout", "ok"]


def test_paired_rounds_stop_at_the_deadline(load):
    timing = load("_timing")
    timings = timing.paired_rounds({"a": lambda: time.sleep(0.01)}, rounds=50, warmup=0, deadline=0.0)
    assert timings.rounds == 1  # the first round always runs


def test_authors_soft_labels_are_the_script_coupling(load):
    # The script divides two views of one tensor in place: both soft labels end up with
    # tau_adv[y] * tau_nat[y], which is what coupling="product" reproduces.
    authors_loop = load("authors_loop")
    torch.manual_seed(0)
    teacher = nn.Linear(6, 4)
    student = nn.Linear(6, 4)
    loop = authors_loop.AuthorsLoop(student, teacher, torch.optim.SGD(student.parameters(), lr=0.1), 4)
    loop.temp_adv.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]))
    loop.temp_nat.copy_(torch.tensor([3.0, 0.7, 1.5, 1.0]))
    x, y = torch.randn(10, 6), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3, 2])
    teacher_adv, teacher_nat = loop.scaled_teacher_logits(x, y)
    loss_fn = ABSLDLoss(4, coupling="product")
    loss_fn.adv.temperatures.copy_(loop.temp_adv)
    loss_fn.clean.temperatures.copy_(loop.temp_nat)
    with torch.no_grad():
        z = teacher(x)
    expected = torch.softmax(z / (loop.temp_adv[y] * loop.temp_nat[y]).unsqueeze(1), dim=1)
    assert_close(torch.softmax(teacher_adv, dim=1), expected)
    assert_close(torch.softmax(teacher_nat, dim=1), expected)
    assert_close(loss_fn.soft_labels(z, y, kind="adv"), expected)
    assert_close(loss_fn.soft_labels(z, y, kind="clean"), expected)


def test_authors_loss_has_the_gradient_of_absld_loss(load):
    # p log(p + 1e-5) differs from p log p by a constant in the student's logits.
    authors_loop = load("authors_loop")
    gen = torch.Generator().manual_seed(1)
    n, c = 6, 5
    s_adv = torch.randn(n, c, generator=gen, dtype=torch.float64, requires_grad=True)
    s_nat = torch.randn(n, c, generator=gen, dtype=torch.float64, requires_grad=True)
    z = 3 * torch.randn(n, c, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    tau_adv = torch.tensor([0.5, 1.0, 2.0, 3.0, 1.5], dtype=torch.float64)
    tau_nat = torch.tensor([1.0, 0.8, 1.2, 2.5, 4.0], dtype=torch.float64)
    ours = torch.autograd.grad(absld_loss(s_adv, s_nat, z, y, tau_adv, tau_nat, coupling="separate"), (s_adv, s_nat))
    theirs = torch.autograd.grad(
        authors_loop.authors_loss(s_adv, s_nat, z / tau_adv[y].unsqueeze(1), z / tau_nat[y].unsqueeze(1)),
        (s_adv, s_nat),
    )
    assert_close(ours, theirs)


def test_authors_end_epoch_is_eq11_with_summed_risk(load):
    authors_loop = load("authors_loop")
    student = nn.Linear(3, 4)
    loop = authors_loop.AuthorsLoop(student, nn.Linear(3, 4), torch.optim.SGD(student.parameters(), lr=0.1), 4)
    sums = torch.tensor([3.0, 1.0, 0.5, 2.5])
    loop.total_loss_adv.copy_(sums)
    loop.total_loss_nat.copy_(sums.flip(0))
    loop.end_epoch()
    # Eq. 11 by hand: gap = R - mean(R) = [1.25, -0.75, -1.25, 0.75], max |gap| = 1.25.
    assert_close(loop.temp_adv, torch.tensor([0.9, 1.06, 1.1, 0.94]))
    ctrl = ClassTemperatureController(4, risk_reduction="sum")
    ctrl.accumulate(sums, torch.arange(4))
    assert_close(ctrl.step(), loop.temp_adv)


def test_kl_pgd_attack_with_ce_takes_the_same_steps_as_torchattacks():
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x, y = torch.rand(8, 3, 2, 2), torch.randint(0, 3, (8,))
    reference = torchattacks.PGD(model, eps=0.1, alpha=0.03, steps=5, random_start=False)(x, y)
    ours = KLPGDAttack(model, eps=0.1, step_size=0.03, steps=5, random_start=None)(x, y)
    # Mean (theirs) and sum (ours) of the CE differ by a factor 8, a power of two: same signs.
    assert_close(ours, reference, rtol=0, atol=1e-7)


def test_profiler_peak_sees_torch_cpu_allocations(load):
    memory = load("memory")

    def two_live_tensors() -> None:
        a = torch.ones(1_000_000)  # 4 MB
        b = a * 2  # 4 MB more while a is alive
        del a, b
        c = torch.ones(500_000)  # 2 MB, after both were freed
        del c

    peak = memory.profiler_peak(two_live_tensors)
    assert 8_000_000 <= peak < 8_100_000


def test_paired_rounds_rotate_the_order(load):
    timing = load("_timing")
    calls: list[str] = []
    timings = timing.paired_rounds({name: (lambda n=name: calls.append(n)) for name in "abc"}, rounds=4, warmup=0)
    assert calls == ["a", "b", "c", "c", "b", "a", "b", "c", "a", "a", "c", "b"]
    assert all(len(t) == 4 for t in timings.wall.values())
    assert timing.ratio_stats([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == (2.0, 2.0, 2.5)
