"""The baselines' steps with compile=True: same losses and per-class state as eager, no graph break.

TRADES runs the student in eval mode for its attack's target, AdaAD attacks a student-teacher pair,
Fair-ARD's attack objective counts correct predictions in place, FRL and CFA attack with per-sample radii
and steps, and BAT's two early-stopping objectives keep their state in place: each must trace as one graph.
"""

from __future__ import annotations

import pytest
import torch
from _models import tiny_batch
from torch import nn
from torch.testing import assert_close

from torch_absld import methods

C = 5


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, C))


# FRL's multipliers need a validation split only from begin_epoch on.
OPTIONS = {"frl": {"begin_epoch": 5}}


def _epoch(name: str, compile: bool):
    generator = torch.Generator().manual_seed(0)
    options = {"steps": 2, "compile": compile, "generator": generator, **OPTIONS.get(name, {})}
    step = methods.create(name, _net(1), num_classes=C, teacher=_net(2), **options).train()
    optimizer = torch.optim.SGD(step.student.parameters(), lr=0.1)
    losses, kappas = [], []
    for seed in range(3):
        x, y = tiny_batch(8, C, seed=seed)
        out = step(x, y)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.detach())
        kappas.append(getattr(out, "kappa", torch.zeros(8)))
    return torch.stack(losses), torch.stack(kappas), step.on_epoch_end()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "graphs"), [("trades", 3), ("adaad", 3), ("fair-ard", 3), ("frl", 3), ("cfa", 3), ("bat", 4)]
)
def test_compiled_step_matches_eager_without_graph_breaks(name, graphs):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    got = _epoch(name, compile=True)
    breaks = dict(torch._dynamo.utils.counters["graph_break"])
    want = _epoch(name, compile=False)
    assert breaks == {}, f"graph breaks: {breaks}"
    # The student in train mode, the teacher (or the student in eval mode) and one attack step (BAT: two).
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    assert_close(got[0], want[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(got[1], want[1])
    if name == "fair-ard":
        assert torch.equal(got[2], want[2])
        assert got[1].sum() > 0
