from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from _reference import cross_entropy_reference, eq11_reference
from torch.testing import assert_close

from torch_absld import ClassTemperatureController
from torch_absld.temperature import temperature_update

C = 4


def _epoch(seed: int, n: int = 64, c: int = 6, hard: int = 2):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g)
    logits[torch.arange(n), target] += 3.0
    logits[target == hard, hard] -= 4.0  # class `hard` is much harder
    return logits, target


def test_update_accumulates_per_class_cross_entropy():
    logits, target = _epoch(0)
    ctrl = ClassTemperatureController(6)
    ctrl.update(logits[:30], target[:30])
    ctrl.update(logits[30:], target[30:])
    ce = cross_entropy_reference(logits, target)
    sums = [sum(v for v, t in zip(ce, target.tolist()) if t == k) for k in range(6)]
    counts = [target.tolist().count(k) for k in range(6)]
    assert_close(ctrl.risk_sum, torch.tensor(sums, dtype=torch.float64))
    assert_close(ctrl.count, torch.tensor(counts, dtype=torch.float64))


@pytest.mark.parametrize(("beta", "low", "high"), [(0.1, 0.5, 5.0), (1.5, 0.8, 3.0)])
def test_step_matches_eq11_reference(beta, low, high):
    ctrl = ClassTemperatureController(6, lr=beta, min_temperature=low, max_temperature=high)
    temperatures = [1.0] * 6
    for epoch in range(4):
        logits, target = _epoch(epoch)
        ctrl.update(logits, target)
        ce = cross_entropy_reference(logits, target)
        sums = [sum(v for v, t in zip(ce, target.tolist()) if t == k) for k in range(6)]
        counts = [target.tolist().count(k) for k in range(6)]
        temperatures = eq11_reference(temperatures, sums, counts, beta, low, high)
        assert_close(ctrl.step(), torch.tensor(temperatures, dtype=torch.float32))
        assert ctrl.count.sum() == 0  # reset after the step


def test_harder_class_ends_with_lower_temperature():
    ctrl = ClassTemperatureController(6)
    for epoch in range(3):
        ctrl.update(*_epoch(epoch, hard=2))
        ctrl.step()
    tau = ctrl.temperatures
    assert tau[2] < 1.0
    assert tau[2] == tau.min()
    assert (tau[[0, 1, 3, 4, 5]] > tau[2]).all()


def test_hand_computed_two_classes():
    # Risks 1 and 3: mean 2, gaps -1 and +1, max|gap| 1 -> tau = 1 + beta, 1 - beta.
    ctrl = ClassTemperatureController(2, lr=0.25)
    ctrl.accumulate(torch.tensor([1.0, 3.0, 3.0]), torch.tensor([0, 1, 1]))
    assert_close(ctrl.step(), torch.tensor([1.25, 0.75]))


def test_equal_risks_leave_temperatures_unchanged():
    ctrl = ClassTemperatureController(3)
    ctrl.accumulate(torch.full((6,), 0.7), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.equal(ctrl.step(), torch.ones(3))
    assert not torch.isnan(ctrl.temperatures).any()


def test_rounding_noise_is_not_amplified_into_a_step():
    # Equal in exact arithmetic: class 0's mean is (0.1 + 0.2) / 2, class 1's is 0.15; in
    # float64 they differ by rounding only (max|gap| / mean is about 1e-16).
    ctrl = ClassTemperatureController(2)
    ctrl.accumulate(torch.tensor([0.1, 0.2, 0.15, 0.15], dtype=torch.float64), torch.tensor([0, 0, 1, 1]))
    risk, _ = ctrl.class_risk()
    assert risk[0] != risk[1]  # the noise is really there
    assert torch.equal(ctrl.step(), torch.ones(2))
    direct = temperature_update(
        torch.ones(2),
        torch.tensor([1.0, 1.0 + 1e-9], dtype=torch.float64),
        torch.tensor([True, True]),
        lr=0.1,
        min_temperature=0.5,
        max_temperature=5.0,
    )
    assert torch.equal(direct, torch.ones(2))


def test_absent_class_keeps_temperature_and_stays_out_of_the_mean():
    ctrl = ClassTemperatureController(4, lr=0.2)
    ctrl.temperatures.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # classes 0 and 1 present with risks 1 and 2 (mean 1.5); classes 2, 3 absent.
    ctrl.accumulate(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    assert_close(ctrl.step(), torch.tensor([1.2, 1.8, 3.0, 4.0]))
    risk = ctrl.last_risk
    assert torch.isnan(risk[2:]).all()
    assert_close(risk[:2], torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_empty_epoch_and_single_class_change_nothing():
    ctrl = ClassTemperatureController(3)
    assert torch.equal(ctrl.step(), torch.ones(3))
    ctrl.accumulate(torch.tensor([5.0, 1.0]), torch.tensor([1, 1]))
    assert torch.equal(ctrl.step(), torch.ones(3))


def test_mean_risk_differs_from_sum_on_imbalanced_data():
    # class 0: 3 samples of CE 1 (sum 3, mean 1); class 1: 1 sample of CE 2 (sum 2, mean 2).
    risk, target = torch.tensor([1.0, 1.0, 1.0, 2.0]), torch.tensor([0, 0, 0, 1])
    mean_ctrl = ClassTemperatureController(2)
    sum_ctrl = ClassTemperatureController(2, risk_reduction="sum")
    mean_ctrl.accumulate(risk, target)
    sum_ctrl.accumulate(risk, target)
    assert_close(mean_ctrl.step(), torch.tensor([1.1, 0.9]))  # class 1 is harder on average
    assert_close(sum_ctrl.step(), torch.tensor([0.9, 1.1]))  # sums punish the frequent class


def test_sum_and_mean_agree_on_balanced_data():
    logits, _ = _epoch(3, n=60)
    target = torch.arange(60) % 6
    a, b = ClassTemperatureController(6), ClassTemperatureController(6, risk_reduction="sum")
    a.update(logits, target)
    b.update(logits, target)
    assert_close(a.step(), b.step())


def test_clamped_to_bounds():
    ctrl = ClassTemperatureController(2, lr=10.0, min_temperature=0.5, max_temperature=5.0)
    ctrl.accumulate(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
    assert_close(ctrl.step(), torch.tensor([5.0, 0.5]))


def test_forward_gathers_own_class_temperature():
    ctrl = ClassTemperatureController(3)
    ctrl.temperatures.copy_(torch.tensor([0.5, 1.5, 4.0]))
    assert_close(ctrl(torch.tensor([2, 0, 0, 1])), torch.tensor([4.0, 0.5, 0.5, 1.5]))


def test_zero_lr_freezes():
    ctrl = ClassTemperatureController(2, lr=0.0)
    ctrl.accumulate(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
    assert torch.equal(ctrl.step(), torch.ones(2))
    assert ctrl.count.sum() == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_risk_raises_at_step_and_never_reaches_temperatures(bad):
    ctrl = ClassTemperatureController(3)
    logits = torch.zeros(3, 3)
    logits[1, 0] = bad
    with pytest.raises(ValueError, match=r"`logits` to hold finite values, but samples of classes \[1\]"):
        ctrl.update(logits, torch.tensor([0, 1, 2]))
    ctrl._update(logits, torch.tensor([0, 1, 2]))  # unchecked, as a training step
    with pytest.raises(ValueError, match=r"Expected finite accumulated risk.*classes \[1\]"):
        ctrl.step()
    assert torch.equal(ctrl.temperatures, torch.ones(3))


def test_state_dict_round_trip_mid_epoch_is_bit_identical():
    batches = [_epoch(seed, n=32) for seed in range(6)]

    def run(interrupt: bool) -> torch.Tensor:
        ctrl = ClassTemperatureController(6, lr=0.3)
        for epoch in range(2):
            for i, (logits, target) in enumerate(batches):
                if interrupt and epoch == 1 and i == 3:
                    buffer = io.BytesIO()
                    torch.save(ctrl.state_dict(), buffer)
                    buffer.seek(0)
                    ctrl = ClassTemperatureController(6, lr=0.3)
                    ctrl.load_state_dict(torch.load(buffer))
                ctrl.update(logits * (1 + epoch), target)
            ctrl.step()
        return ctrl.temperatures

    assert torch.equal(run(interrupt=False), run(interrupt=True))


def test_state_dict_holds_temperatures_sums_and_beta():
    ctrl = ClassTemperatureController(3, lr=0.2)
    ctrl.lr = 0.02
    ctrl.accumulate(torch.tensor([1.0]), torch.tensor([2]))
    state = ctrl.state_dict()
    assert set(state) == {"temperatures", "accumulator", "_extra_state"}
    fresh = ClassTemperatureController(3)
    fresh.load_state_dict(state)
    assert fresh.lr == 0.02
    assert fresh.base_lr == 0.2
    assert torch.equal(fresh.accumulator, ctrl.accumulator)


def test_loading_corrupt_state_raises():
    ctrl = ClassTemperatureController(3)
    state = ctrl.state_dict()
    state["temperatures"] = torch.tensor([1.0, float("nan"), 2.0])
    with pytest.raises(
        ValueError, match=r"loaded `temperatures` to be finite, in \[min_temperature, max_temperature\] = \[0.5, 5\]"
    ):
        ClassTemperatureController(3).load_state_dict(state)
    state = ctrl.state_dict()
    state["_extra_state"] = {"lr": -0.1, "base_lr": 0.1, "epochs_stepped": 0}
    with pytest.raises(ValueError, match=r"`_extra_state\['lr'\]` in \[0, inf\]"):
        ClassTemperatureController(3).load_state_dict(state)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_module_dtype_cast_keeps_the_controller_precision(dtype):
    g = torch.Generator().manual_seed(0)
    n = 600  # more samples per class than bf16 / fp16 count exactly (256 / 2048)
    logits = torch.randn(n, 3, generator=g)
    target = torch.randint(0, 2, (n,), generator=g)  # class 2 stays absent
    cast = ClassTemperatureController(3, lr=0.2).to(dtype)
    assert cast.temperatures.dtype == torch.float32
    assert cast.accumulator.dtype == torch.float64
    low = logits.to(dtype)
    cast.update(low, target)
    counts = torch.bincount(target, minlength=3).to(torch.float64)
    assert torch.equal(cast.count, counts)
    risk = F.cross_entropy(low if dtype == torch.float64 else low.float(), target, reduction="none").double()
    assert_close(cast.risk_sum, torch.zeros(3, dtype=torch.float64).index_add_(0, target, risk))
    cast.step()
    assert cast.temperatures.dtype == torch.float32
    assert not torch.equal(cast.temperatures, torch.ones(3)), "the temperatures should have moved"
    assert cast.temperatures[2] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 1}, ValueError, "`num_classes` >= 2, but got 1"),
        ({"num_classes": 3.0}, TypeError, "`num_classes` to be an int"),
        ({"min_temperature": 0.0}, ValueError, "`min_temperature` > 0"),
        ({"min_temperature": -1.0}, ValueError, "`min_temperature` > 0"),
        ({"min_temperature": 3.0, "max_temperature": 2.0}, ValueError, "`min_temperature` <= `max_temperature`"),
        ({"init_temperature": 9.0}, ValueError, "`init_temperature` in"),
        ({"lr": -0.1}, ValueError, "`lr` >= 0"),
        ({"lr": float("nan")}, ValueError, "`lr` to be finite"),
        ({"risk_reduction": "median"}, ValueError, "`risk_reduction` to be one of"),
    ],
)
def test_controller_configuration(kwargs, error, match):
    kwargs = {"num_classes": C, **kwargs}
    with pytest.raises(error, match=match):
        ClassTemperatureController(**kwargs)


def test_value_checks_can_be_switched_off_for_speed():
    ctrl = ClassTemperatureController(C, validate_args=False)
    ctrl.update(torch.randn(2, C), torch.tensor([0, 1]))  # no host sync; shapes still checked
    with pytest.raises(ValueError, match="shape"):
        ctrl.update(torch.randn(2, C + 1), torch.tensor([0, 1]))
