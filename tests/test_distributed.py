from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from _dist import run_ranks
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import ABSLDLoss, ClassTemperatureController, KLPGDAttack

pytestmark = pytest.mark.distributed

C = 7


def _epochs_of_data(num_epochs: int = 3, n: int = 48):
    # Imbalanced and class-dependent difficulty, so the temperatures really move.
    data = []
    g = torch.Generator().manual_seed(0)
    for _ in range(num_epochs):
        target = torch.multinomial(torch.linspace(1, 3, C), n, replacement=True, generator=g)
        logits = torch.randn(n, C, generator=g) + 2 * torch.nn.functional.one_hot(target, C) * (target[:, None] % 3)
        data.append((logits, target))
    return data


def _shard_controllers(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    ctrl = ClassTemperatureController(C, lr=0.3)
    loss_fn = ABSLDLoss(C)
    history = []
    for logits, target in _epochs_of_data():
        mine = slice(rank, None, world_size)
        ctrl.update(logits[mine], target[mine])
        loss_fn(logits[mine] * 0.5, logits[mine], logits[mine].flip(1), target[mine])
        history.append(ctrl.step().clone())
        loss_fn.step()
    return {
        "ctrl": torch.stack(history),
        "adv": loss_fn.adv.temperatures.clone(),
        "clean": loss_fn.clean.temperatures.clone(),
    }


def test_two_ranks_equal_one_process_on_the_union(tmp_path):
    results = run_ranks(_shard_controllers, tmp_path)
    ctrl = ClassTemperatureController(C, lr=0.3)
    loss_fn = ABSLDLoss(C)
    history = []
    for logits, target in _epochs_of_data():
        ctrl.update(logits, target)
        loss_fn(logits * 0.5, logits, logits.flip(1), target)
        history.append(ctrl.step().clone())
        loss_fn.step()
    assert not torch.equal(history[-1], torch.ones(C))
    for result in results:
        assert_close(result["ctrl"], torch.stack(history))
        assert_close(result["adv"], loss_fn.adv.temperatures)
        assert_close(result["clean"], loss_fn.clean.temperatures)
    assert torch.equal(results[0]["ctrl"], results[1]["ctrl"])  # bit-identical across ranks


def _ddp_attack_then_train(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = tiny_cnn()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    x, y = tiny_batch(seed=rank)
    x_adv = KLPGDAttack(ddp, random_start=None, steps=3)(x, y)
    direct = KLPGDAttack(model, random_start=None, steps=3)(x, y)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for _ in range(2):  # training steps after the attack must not hang or complain
        loss = torch.nn.functional.cross_entropy(ddp(x_adv), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"same": torch.tensor(torch.equal(x_adv, direct)), "weight": model[0].weight.detach().clone()}


def test_attack_on_a_ddp_model_uses_the_inner_module(tmp_path):
    results = run_ranks(_ddp_attack_then_train, tmp_path)
    assert all(bool(r["same"]) for r in results)
    assert torch.equal(results[0]["weight"], results[1]["weight"])


def test_single_process_needs_no_process_group():
    assert not dist.is_initialized()
    ctrl = ClassTemperatureController(2)
    ctrl.accumulate(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    assert_close(ctrl.step(), torch.tensor([1.1, 0.9]))
