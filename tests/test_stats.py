from __future__ import annotations

import io

import pytest
import torch
from torch.testing import assert_close

from torch_absld import ClassStatistics, ClassTemperatureController

C = 4


def _loop_reference(values: list[list[float]], target: list[int], num_classes: int) -> list[list[float]]:
    """Per-class sums of each quantity and the counts, with Python loops."""
    num_stats = len(values[0])
    out = [[0.0] * num_classes for _ in range(num_stats + 1)]
    for row, label in zip(values, target):
        for s, value in enumerate(row):
            out[s][label] += value
        out[num_stats][label] += 1
    return out


def test_accumulate_matches_a_loop_over_samples():
    g = torch.Generator().manual_seed(0)
    stats = ClassStatistics(C, num_stats=3)
    values, target = torch.randn(20, 3, generator=g), torch.randint(0, C, (20,), generator=g)
    stats.accumulate(values[:7], target[:7])
    stats.update(values[7:], target[7:])
    want = torch.tensor(_loop_reference(values.tolist(), target.tolist(), C), dtype=torch.float64)
    assert stats.accumulator.shape == (4, C)
    assert stats.accumulator.dtype == torch.float64
    assert_close(stats.accumulator, want)
    assert_close(stats.sums, want[:3])
    assert torch.equal(stats.sample_counts, want[3])


def test_one_quantity_takes_a_vector_and_mean_is_nan_for_unseen_classes():
    stats = ClassStatistics(3)
    stats.accumulate(torch.tensor([1.0, 3.0, 2.0], dtype=torch.bfloat16), torch.tensor([0, 0, 2]))
    assert_close(stats.mean(), torch.tensor([[2.0, float("nan"), 2.0]], dtype=torch.float64), equal_nan=True)
    stats.reset()
    assert torch.equal(stats.accumulator, torch.zeros(2, 3, dtype=torch.float64))


def test_synced_is_a_copy_in_one_process():
    stats = ClassStatistics(2)
    stats.accumulate(torch.tensor([1.0]), torch.tensor([1]))
    synced = stats.synced()
    assert torch.equal(synced, stats.accumulator)
    synced.zero_()
    assert stats.accumulator[1, 1] == 1  # the local sums are untouched


def test_accumulate_compiles_without_graph_breaks():
    stats, reference = ClassStatistics(C, num_stats=2, validate_args=False), ClassStatistics(C, num_stats=2)
    accumulate = torch.compile(stats.accumulate, fullgraph=True, backend="eager")
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        values, target = torch.randn(6, 2, generator=g), torch.randint(0, C, (6,), generator=g)
        accumulate(values, target)
        reference.accumulate(values, target)
    assert torch.equal(stats.accumulator, reference.accumulator)


def test_not_a_buffer_but_moves_with_the_module_and_stays_float64():
    stats = ClassStatistics(C)
    assert dict(stats.named_buffers()) == {}  # DistributedDataParallel only broadcasts buffers
    stats.half()
    assert stats.accumulator.dtype == torch.float64
    stats.to(torch.bfloat16)
    assert stats.accumulator.dtype == torch.float64
    stats.to("meta")
    assert stats.accumulator.device.type == "meta"
    assert stats.accumulator.dtype == torch.float64


def test_state_dict_round_trip_mid_epoch():
    stats = ClassStatistics(C, num_stats=2)
    stats.accumulate(torch.randn(5, 2), torch.tensor([0, 1, 1, 3, 3]))
    state = stats.state_dict()
    assert list(state) == ["accumulator"]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = ClassStatistics(C, num_stats=2)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(fresh.accumulator, stats.accumulator)
    with pytest.raises(RuntimeError, match="Missing key"):
        fresh.load_state_dict({})


@pytest.mark.parametrize(
    ("loaded", "match"),
    [
        (torch.zeros(3, C, dtype=torch.float64), r"loaded `accumulator` of shape \(2, 4\), but got \(3, 4\)"),
        (torch.tensor([[float("nan"), 0, 0, 0], [1.0, 0, 0, 0]]), "finite with non-negative integer counts"),
        (torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]), "non-negative integer counts"),
        (torch.tensor([[1.0, 0, 0, 0], [0.5, 0, 0, 0]]), "non-negative integer counts"),
    ],
)
def test_a_rejected_load_leaves_the_module_as_it_was(loaded, match):
    stats = ClassStatistics(C)
    stats.accumulate(torch.tensor([2.0]), torch.tensor([1]))
    before = stats.accumulator.clone()
    with pytest.raises(ValueError, match=match):
        stats.load_state_dict({"accumulator": loaded})
    assert torch.equal(stats.accumulator, before)


def test_a_rejected_controller_load_changes_nothing():
    ctrl = ClassTemperatureController(C, lr=0.2)
    ctrl.accumulate(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    ctrl.step()
    before = {
        key: value.clone() if isinstance(value, torch.Tensor) else value for key, value in ctrl.state_dict().items()
    }
    for key, bad in (
        ("temperatures", torch.tensor([1.0, float("nan"), 1.0, 1.0])),
        ("accumulator", torch.full((2, C), -1.0, dtype=torch.float64)),
        ("_extra_state", {"lr": -1.0, "base_lr": 0.1, "epochs_stepped": 3}),
    ):
        state = ClassTemperatureController(C).state_dict()
        state[key] = bad
        with pytest.raises(ValueError, match=r"loaded|`lr` >= 0"):
            ctrl.load_state_dict(state)
        for name, value in ctrl.state_dict().items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, before[name]), (key, name)
            else:
                assert value == before[name], (key, name)


def test_a_checkpoint_of_version_0_1_loads():
    # ClassTemperatureController.state_dict() of torch-absld 0.1: the same three keys.
    old = {
        "temperatures": torch.tensor([0.9, 1.1, 1.0, 1.0]),
        "accumulator": torch.tensor([[3.0, 1.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]], dtype=torch.float64),
        "_extra_state": {"lr": 0.05, "base_lr": 0.1, "epochs_stepped": 7},
    }
    ctrl = ClassTemperatureController(C)
    ctrl.load_state_dict(old)
    assert torch.equal(ctrl.risk_sum, old["accumulator"][0])
    assert torch.equal(ctrl.count, old["accumulator"][1])
    assert (ctrl.lr, ctrl.base_lr, ctrl.epochs_stepped) == (0.05, 0.1, 7)
    assert set(ctrl.state_dict()) == set(old)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(3, 2), torch.tensor([0, 1, 2])), ValueError, r"`values` of shape \(N,\) or \(N, S\) with S = 1"),
        ((torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2])), TypeError, "`values` to be a floating point"),
        ((torch.zeros(3), torch.tensor([0, 1, 4])), ValueError, r"`target` values in \[0, 4\)"),
        ((torch.zeros(3), torch.tensor([0, 1])), ValueError, r"`target` of shape \(N,\) with N = 3"),
    ],
)
def test_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        ClassStatistics(C).accumulate(*args)


def test_constructor_checks():
    with pytest.raises(ValueError, match="`num_classes` >= 1"):
        ClassStatistics(0)
    with pytest.raises(ValueError, match="`num_stats` to be an int >= 1"):
        ClassStatistics(3, num_stats=0)
    assert "num_classes=3, num_stats=2" in repr(ClassStatistics(3, 2))
