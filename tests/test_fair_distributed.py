"""FRL's and CFA's per-class state under two gloo ranks: the same numbers as one process on the union."""

from __future__ import annotations

import pytest
import torch
from _baselines import mlp
from _dist import run_ranks
from _models import tiny_batch
from torch import nn
from torch.testing import assert_close

from torch_absld import PGDConfig
from torch_absld.averaging import FairnessAwareAveraging
from torch_absld.class_eps import CalibratedEpsilon
from torch_absld.methods.cfa import CFAStep
from torch_absld.methods.frl import FRLStep
from torch_absld.multipliers import FRLMultipliers

pytestmark = pytest.mark.distributed

C = 5


def _student() -> nn.Module:
    """No BatchNorm (a sample's outputs do not depend on its batch); float64 for the counts of correct samples."""
    return mlp(C, seed=1).double()


def _data(seed: int, n: int = 16):
    """Labels mostly the model's own predictions, so that classes differ in accuracy."""
    x, y = tiny_batch(n, C, seed=seed)
    x = x.double()
    with torch.no_grad():
        predicted = _student()(x).argmax(dim=1)
    y = torch.where(torch.arange(n) % 3 == 0, y, predicted)
    y[:C] = torch.arange(C)
    return x, y


def _run(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    mine = slice(rank, None, world_size)
    validation = [tuple(t[mine] for t in _data(40))]
    results: dict[str, torch.Tensor] = {}
    # The KL attacks of TRADES-like methods start where their gradient is zero: their first signed steps follow
    # rounding noise, which depends on the batch. A zero training radius keeps them still; the validation
    # attacks (CE, per-sample keyed starts) keep a radius and do not depend on the batch.
    options = {"steps": 2, "eps": 0.0, "validation": validation}
    frl = FRLStep(_student(), C, eps_rate=1.0, threshold=0.0, **options)
    cfa = CFAStep(_student(), C, start_epoch=0, threshold=0.0, decay=0.5, **options)
    frl.validation_config = PGDConfig(eps=24 / 255, step_size=8 / 255, steps=3, random_start="uniform")
    assert cfa.fawa is not None
    cfa.fawa.attack = frl.validation_config
    for name, step in (("frl", frl), ("cfa", cfa)):
        model = nn.parallel.DistributedDataParallel(step) if world_size > 1 else step
        optimizer = torch.optim.SGD(step.student.parameters(), lr=0.5)
        scales = []
        for _ in range(2):
            for seed in range(3):
                x, y = _data(seed)
                out = model(x[mine], y[mine])
                optimizer.zero_grad()
                out.loss.backward()
                optimizer.step()
            scales.append(step.on_epoch_end().clone())
        results[f"{name}_scales"] = torch.stack(scales)
        results[f"{name}_student"] = step.student[1].weight.detach().clone()
    results["frl_weights"] = torch.stack([frl.multipliers.natural_weights, frl.multipliers.boundary_weights])
    results["cfa_beta"] = cfa.loss_fn.calibration.class_beta.clone()
    results["cfa_average"] = cfa.fawa.module[1].weight.detach().clone()
    # The controllers alone, each rank fed its share.
    g = torch.Generator().manual_seed(9)
    logits, robust, target = torch.randn(30, C, generator=g), torch.randn(30, C, generator=g), torch.arange(30) % C
    calibrated, multipliers = CalibratedEpsilon(C), FRLMultipliers(C)
    fawa = FairnessAwareAveraging(mlp(C, seed=2), C, start_epoch=0, threshold=0.1)
    calibrated.update(robust[mine], target[mine])
    multipliers.record(logits[mine], robust[mine], target[mine])
    fawa.record(logits[mine], robust[mine], target[mine])
    results["calibrated"] = calibrated.step().clone()
    results["multipliers"] = multipliers.step().clone()
    results["fawa"] = torch.tensor([fawa.step(), fawa.last_worst])
    return results


def test_two_ranks_equal_one_process_on_the_union(tmp_path):
    want = _run(0, 1)
    assert not torch.equal(want["frl_scales"][-1], torch.ones(C, dtype=torch.float64))
    assert not torch.equal(want["cfa_scales"][-1], torch.ones(C, dtype=torch.float64))
    weights = want["frl_weights"]
    assert not torch.equal(weights, torch.full_like(weights, 1 / C))  # the second epoch's weighted means
    results = run_ranks(_run, tmp_path)
    for got in results:
        for key, value in want.items():
            assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)
    for key in ("frl_scales", "cfa_scales", "frl_weights", "cfa_beta"):
        assert torch.equal(results[0][key], results[1][key]), key  # every rank takes the same decision
