"""ABSLDStep(compile=True): same losses, gradients and temperatures as eager, no graph break."""

from __future__ import annotations

import pytest
import torch
from _models import tiny_batch
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDStep

C = 5


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, C))


def _epoch(compile: bool):
    distiller = ABSLDStep(_net(1), _net(2), C, steps=2, compile=compile, lr=0.5).train()
    optimizer = torch.optim.SGD(distiller.student.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(0)
    losses, grads = [], []
    for seed in range(3):
        x, y = tiny_batch(8, C, seed=seed)
        out = distiller(x, y)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in distiller.student.parameters()]))
    temperatures = [t.clone() for t in distiller.on_epoch_end()]
    return distiller, torch.stack(losses), torch.stack(grads), temperatures


@pytest.mark.slow
def test_compiled_distiller_matches_eager():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        compiled, *got = _epoch(compile=True)
        breaks = dict(torch._dynamo.utils.counters["graph_break"])
        _, *want = _epoch(compile=False)
    finally:
        torch.set_num_threads(threads)
    assert breaks == {}, f"graph breaks: {breaks}"
    # student (train), teacher (inference) and one attack step: three graphs, nothing recompiled.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 3
    assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert_close(got[1], want[1], rtol=1e-4, atol=1e-6)
    assert_close(got[2], want[2], rtol=1e-6, atol=1e-6)
    assert not torch.equal(got[2][0], torch.ones(C))
    # The modules are not replaced: checkpoints of a compiled run load into an eager one.
    assert "student.0.weight" in compiled.state_dict()
    assert not any("_orig_mod" in key for key in compiled.state_dict())
