"""Two gloo ranks on the CPU, each evaluating its DistributedSampler shard, against one process on all data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _eval_models import blobs, fit, single_thread, tiny_mlp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from torch_absld import ClassAccuracy, evaluate_robustness

WORLD_SIZE = 2
NUM_CLASSES = 4
N = 37  # odd: the sampler pads rank 1's shard with one duplicate, which must not be counted
ATTACKS = ("clean", "fgsm", "pgd", "cw")
OVERRIDES = {"pgd": {"step_size": 0.025, "steps": 10}, "cw": {"step_size": 0.025, "steps": 10}}


def _data() -> TensorDataset:
    return TensorDataset(*blobs(N, NUM_CLASSES, seed=2))


def _rank(rank: int, store: str, out: str, state: dict[str, torch.Tensor]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD_SIZE)
    try:
        dataset = _data()
        model = tiny_mlp(12, NUM_CLASSES)
        model.load_state_dict(state)
        model.eval()
        sampler = DistributedSampler(dataset, num_replicas=WORLD_SIZE, rank=rank, shuffle=True, seed=3)
        loader = DataLoader(dataset, batch_size=4, sampler=sampler)
        report = evaluate_robustness(
            model, loader, NUM_CLASSES, attacks=ATTACKS, eps=0.1, progress=False, attack_overrides=OVERRIDES
        )
        # The accumulator on its own: each rank feeds its shard, compute() sums over both.
        metric = ClassAccuracy(NUM_CLASSES)
        shard = list(range(rank, N, WORLD_SIZE))
        with torch.no_grad():
            metric.update(model(dataset.tensors[0][shard]), dataset.tensors[1][shard])
        result = metric.compute()
        local_total = metric.total.sum().item()
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"report": report.to_dict(), "metric": result.__dict__, "local_total": local_total}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_ranks_report_equals_one_process_on_all_data(tmp_path: Path) -> None:
    dataset = _data()
    with single_thread():
        model = fit(tiny_mlp(12, NUM_CLASSES, seed=1), *dataset.tensors)
    # The ranks get the trained weights (training in each child would pay torch's first-step warm-up twice).
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path), model.state_dict()), nprocs=WORLD_SIZE, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]

    with single_thread():
        single = evaluate_robustness(
            model,
            DataLoader(dataset, batch_size=4),
            NUM_CLASSES,
            attacks=ATTACKS,
            eps=0.1,
            progress=False,
            attack_overrides=OVERRIDES,
        )
        metric = ClassAccuracy(NUM_CLASSES)
        with torch.no_grad():
            metric.update(model(dataset.tensors[0]), dataset.tensors[1])

    assert single.num_samples == N
    for data in ranks:
        assert data["report"] == single.to_dict()  # every rank, every attack, every count: exactly equal
        assert data["metric"] == metric.compute().__dict__
    assert [data["local_total"] for data in ranks] == [19, 18]
    assert 0 < single["pgd"].avg < single["clean"].avg  # the attacks did something
