from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from _dist import run_ranks
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import ABSLDLoss, ClassStatistics, ClassTemperatureController, KLPGDAttack

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


class _StudentWithLoss(torch.nn.Module):
    """A user's module that holds an ABSLDLoss, wrapped in DDP as a whole (nothing marked)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.student = torch.nn.Linear(C, C)
        self.loss_fn = ABSLDLoss(C, lr=0.3)

    def forward(self, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self.student(teacher_logits)
        return self.loss_fn(logits * 0.5, logits, teacher_logits, target)


def _ddp_module_with_a_loss(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    module = _StudentWithLoss()
    model = torch.nn.parallel.DistributedDataParallel(module) if world_size > 1 else module
    assert not hasattr(module, "_ddp_params_and_buffers_to_ignore")
    optimizer = torch.optim.SGD(module.parameters(), lr=0.0)  # the same weights on every rank
    for logits, target in _epochs_of_data(num_epochs=2):
        mine = slice(rank, None, world_size)
        for part in range(3):  # several forwards per epoch: DDP broadcasts buffers before each
            rows = slice(part * 16, (part + 1) * 16)
            loss = model(logits[rows][mine], target[rows][mine])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        module.loss_fn.step()
    return {"adv": module.loss_fn.adv.temperatures.clone(), "clean": module.loss_fn.clean.temperatures.clone()}


def test_ddp_without_marking_equals_one_process_on_the_union(tmp_path):
    want = _ddp_module_with_a_loss(0, 1)
    assert not torch.equal(want["adv"], torch.ones(C))
    for got in run_ranks(_ddp_module_with_a_loss, tmp_path):
        assert_close(got["adv"], want["adv"])
        assert_close(got["clean"], want["clean"])


def _synced_statistics(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    stats = ClassStatistics(C, num_stats=2)
    values, target = _statistics_data()
    stats.accumulate(values[rank::world_size], target[rank::world_size])
    return {"local": stats.accumulator.clone(), "synced": stats.synced()}


def _statistics_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(30, 2, generator=g, dtype=torch.float64), torch.randint(0, C, (30,), generator=g)


def test_class_statistics_sync_equals_one_process_on_the_union(tmp_path):
    union = ClassStatistics(C, num_stats=2)
    union.accumulate(*_statistics_data())
    results = run_ranks(_synced_statistics, tmp_path)
    for result in results:
        assert_close(result["synced"], union.accumulator)
    assert_close(results[0]["local"] + results[1]["local"], union.accumulator)
    assert not torch.equal(results[0]["local"], union.accumulator)  # synced() left the local sums alone


def _rank_zero_alone(rank: int, world_size: int) -> dict[str, object] | None:
    """Rank 0 steps, computes and evaluates in local mode while rank 1 does nothing: no collective may run."""
    if rank != 0:
        return None
    from _eval_models import blobs, tiny_mlp

    from torch_absld import ClassAccuracy, evaluate_robustness

    def no_collective(*args: object, **kwargs: object) -> None:
        raise AssertionError("a collective was called in local mode")

    real_all_reduce = dist.all_reduce
    dist.all_reduce = no_collective  # type: ignore[assignment]
    try:
        logits, target = _epochs_of_data(num_epochs=1)[0]
        ctrl = ClassTemperatureController(C, lr=0.3, process_group=False)
        ctrl.update(logits, target)
        loss_fn = ABSLDLoss(C, process_group=False)
        loss_fn(logits * 0.5, logits, logits.flip(1), target)
        metric = ClassAccuracy(C, process_group=False)
        metric.update(logits, target)
        x, y = blobs(12, 3)
        report = evaluate_robustness(
            tiny_mlp(12, 3), [(x, y)], 3, attacks=("clean", "pgd"), progress=False, process_group=False
        )
        return {
            "tau": ctrl.step().clone(),
            "loss_tau": loss_fn.step()[0].clone(),
            "accuracy": metric.compute().per_class,
            "report": report.to_dict()["results"],
        }
    finally:
        dist.all_reduce = real_all_reduce


def test_local_mode_runs_on_one_rank_without_collectives(tmp_path):
    got = run_ranks(_rank_zero_alone, tmp_path)[0]
    assert got is not None
    logits, target = _epochs_of_data(num_epochs=1)[0]
    ctrl = ClassTemperatureController(C, lr=0.3)
    ctrl.update(logits, target)
    assert_close(got["tau"], ctrl.step())
    loss_fn = ABSLDLoss(C)
    loss_fn(logits * 0.5, logits, logits.flip(1), target)
    assert_close(got["loss_tau"], loss_fn.step()[0])
    from _eval_models import blobs, tiny_mlp

    from torch_absld import ClassAccuracy, evaluate_robustness

    metric = ClassAccuracy(C)
    metric.update(logits, target)
    assert got["accuracy"] == metric.compute().per_class
    x, y = blobs(12, 3)
    want = evaluate_robustness(tiny_mlp(12, 3), [(x, y)], 3, attacks=("clean", "pgd"), progress=False)
    assert got["report"] == want.to_dict()["results"]
