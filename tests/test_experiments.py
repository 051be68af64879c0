"""experiments/temperature_modes.py runs end to end (tiny settings) and its report pairs the right runs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load():
    # On sys.path (which spawned workers inherit), so the workers can import the jobs by name.
    if str(ROOT / "experiments") not in sys.path:
        sys.path.insert(0, str(ROOT / "experiments"))
    return importlib.import_module("temperature_modes")


@pytest.mark.slow
def test_tiny_run_report_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    modes = _load()
    out = tmp_path / "modes"
    args = ["--seeds", "0-1", "--epochs", "1", "--teacher-epochs", "1", "--workers", "1", "--autoattack", "none"]
    modes.main([*args, "--variants", "rslad,product,separate_log,rslad@0.5,separate@0.5", "--out", str(out)])
    table = capsys.readouterr().out
    for variant in ("product", "separate_log", "separate@0.5"):
        assert f"| {variant} | 2 |" in table
    assert "| rslad |" not in table  # the baseline itself is not a row
    run = json.loads((out / "runs" / "0_product.json").read_text())
    baseline = json.loads((out / "runs" / "0_rslad.json").read_text())
    assert len(run["history"]["tau_eff"]) == 1
    # Epoch 1 runs with all temperatures at 1: product and RSLAD agree until the first update.
    assert run["history"]["pgd_avg"] == baseline["history"]["pgd_avg"]
    png = tmp_path / "t.png"
    modes.main(["--out", str(out), "--variants", "product,separate_log", "--plot", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_update_is_multiplicative() -> None:
    modes = _load()
    loss = modes.VariantLoss(3, coupling="separate", lr=0.2, log_update=True, min_temperature=0.25, max_temperature=25)
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]])
    target = torch.tensor([0, 1, 2])
    loss.adv.update(logits, target)
    risk = torch.nn.functional.cross_entropy(logits.double(), target, reduction="none")
    gap = risk - risk.mean()
    want = torch.exp(-0.2 * gap / gap.abs().max())
    tau_adv, _ = loss.step()
    torch.testing.assert_close(tau_adv.double(), want, rtol=1e-6, atol=0)
