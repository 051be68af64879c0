"""Saved per-class state: what the rules make round-trips; anything past a declared bound is refused unchanged."""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from _reads import count_reads
from torch import nn

from torch_absld.averaging import FairnessAwareAveraging
from torch_absld.class_eps import CalibratedEpsilon
from torch_absld.class_weights import VulnerabilityWeights
from torch_absld.multipliers import FRLMultipliers
from torch_absld.stats import Bound, ClassStatistics
from torch_absld.temperature import ClassTemperatureController

C, DRAWS = 4, 50


def _labels(g: torch.Generator, n: int) -> torch.Tensor:
    return torch.cat([torch.arange(C), torch.randint(0, C, (n,), generator=g)])  # every class present


def _logits(g: torch.Generator, n: int) -> torch.Tensor:
    return 3 * torch.randn(n + C, C, generator=g)


def _feed(ctrl: ClassStatistics, g: torch.Generator) -> None:
    """One valid random batch, through the public entry point."""
    y = _labels(g, int(torch.randint(0, 6, (), generator=g)))
    n = y.shape[0] - C
    if isinstance(ctrl, (FRLMultipliers, FairnessAwareAveraging)):
        ctrl.record(_logits(g, n), _logits(g, n), y)
    elif isinstance(ctrl, VulnerabilityWeights):
        ctrl.update(torch.randint(0, 11, y.shape, generator=g).float(), y)
    elif isinstance(ctrl, (ClassTemperatureController, CalibratedEpsilon)):
        ctrl.update(_logits(g, n), y)
    else:
        ctrl.accumulate(torch.randn(y.shape[0], ctrl.num_stats, generator=g, dtype=torch.float64), y)


CONTROLLERS: dict[str, Callable[[], ClassStatistics]] = {
    "stats": lambda: ClassStatistics(C, 2),
    "temperature": lambda: ClassTemperatureController(C, lr=0.5, min_temperature=0.5, max_temperature=2.0),
    "cfa": lambda: CalibratedEpsilon(C),
    "fair-ard": lambda: VulnerabilityWeights(C),
    "frl": lambda: FRLMultipliers(C, rate=0.3, eps_rate=1.0),
    "fawa": lambda: FairnessAwareAveraging(nn.Linear(2, C), C, start_epoch=1, threshold=0.0),
}


def _random_state(make: Callable[[], ClassStatistics], seed: int) -> ClassStatistics:
    """A controller after a random number of epochs of random valid batches, mid-epoch."""
    g, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    ctrl = make()
    for _ in range(rng.randrange(4)):
        for _ in range(rng.randrange(1, 3)):
            _feed(ctrl, g)
        ctrl.reset() if type(ctrl) is ClassStatistics else ctrl.step()  # type: ignore[attr-defined]
    for _ in range(rng.randrange(3)):
        _feed(ctrl, g)
    return ctrl


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a.nan_to_num(7.5), b.nan_to_num(7.5))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and (a == b or (math.isnan(a) and math.isnan(b)))


def _snapshot(ctrl: ClassStatistics) -> dict[str, Any]:
    """Every buffer (non-persistent ones too), the accumulator and the extra state."""
    return copy.deepcopy({**dict(ctrl.named_buffers()), **ctrl.state_dict()})


def _past(bound: Bound, value: float) -> Iterator[float]:
    """Numbers just past ``bound`` (and NaN, and a fraction for integers)."""
    if bound.start is None or not math.isnan(bound.start):
        yield math.nan
    if math.isfinite(bound.high):
        yield bound.high + 0.01 * (1 + abs(bound.high))
    if math.isfinite(bound.low):
        yield bound.low - 0.01 * (1 + abs(bound.low))
    if bound.integer:
        yield value + 0.5


def _violations(ctrl: ClassStatistics, state: dict[str, Any], rng: random.Random) -> Iterator[tuple[str, Any]]:
    """``(key named by the error, state pushed past one bound)`` for every field of ``state``."""
    bounds, k = ctrl.state_bounds(), rng.randrange(C)
    for key, value in state.items():
        if key == "_extra_state":
            for name, number in value.items():
                for bad in _past(bounds[name], number):  # type: ignore[arg-type]
                    yield f"_extra_state['{name}']", {**state, key: {**value, name: bad}}
                yield f"_extra_state['{name}']", {**state, key: {**value, name: "1"}}
        elif key == ctrl._state_key:
            sums, count, bound = value[:-1], value[-1], ctrl.value_bound
            for row, number in ((-1, -1.0), (-1, float(count[k]) + 0.5), (0, math.nan)):
                yield (
                    key,
                    {
                        **state,
                        key: value.clone().index_put_(
                            (torch.tensor(row), torch.tensor(k)), torch.tensor(number, dtype=value.dtype)
                        ),
                    },
                )
            empty = value.clone()
            empty[:, k] = 0
            empty[0, k] = 1
            yield key, {**state, key: empty}
            seen = count > 0
            for number in [bound.low - 1, bound.high + 1] if seen.any() else []:
                if math.isfinite(number):
                    yield key, {**state, key: torch.cat([torch.where(seen, number * count, sums), count[None]])}
            if bound.integer and seen.any():
                yield key, {**state, key: torch.cat([sums + 0.5 * seen, count[None]])}
        elif "." not in key:
            declared = bounds.get(key, Bound())
            rows = declared if isinstance(declared, tuple) else [declared]
            for row, bound in enumerate(rows):
                where = (row, k) if isinstance(declared, tuple) else (k,)
                name = f"{key}[{row}]" if isinstance(declared, tuple) else key
                for bad in _past(bound, 0.0):
                    pushed = value.clone()
                    pushed[where] = bad
                    yield name, {**state, key: pushed}
                if bound.sum_low == bound.sum_high:
                    yield name, {**state, key: value * 0.5}
                elif bound.sum_high < math.inf:
                    pushed = value.clone()
                    pushed[row] = bound.high
                    yield name, {**state, key: pushed}


@pytest.mark.parametrize("name", CONTROLLERS)
def test_valid_states_round_trip_and_every_field_past_its_bound_is_refused_unchanged(name: str) -> None:
    make, refused = CONTROLLERS[name], 0
    for seed in range(DRAWS):
        ctrl, rng = _random_state(make, seed), random.Random(seed)
        state = copy.deepcopy(ctrl.state_dict())
        fresh = make()
        fresh.load_state_dict(copy.deepcopy(state))
        assert _same(fresh.state_dict(), state), f"draw {seed} did not round-trip"
        for key, bad in _violations(fresh, state, rng):
            before = _snapshot(fresh)
            with pytest.raises(ValueError, match=re.escape(f"loaded `{key}`")):
                fresh.load_state_dict(bad)
            assert _same(_snapshot(fresh), before), f"a refused `{key}` changed the controller (draw {seed})"
            refused += 1
    assert refused >= 4 * DRAWS


NAN = torch.tensor([[0.0, 1.0, 0.0, 0.0], [math.nan, 0.0, 0.0, 0.0]])
Y = torch.tensor([1, 2])


def _fawa() -> FairnessAwareAveraging:
    return FairnessAwareAveraging(nn.Linear(2, C), C, start_epoch=0)


@pytest.mark.parametrize(
    ("make", "call", "match"),
    [
        (lambda: ClassStatistics(C), lambda c: c.accumulate(torch.tensor([1.0, math.nan]), Y), r"`values`.*\[2\]"),
        (lambda: ClassTemperatureController(C), lambda c: c.update(NAN, Y), r"`logits`.*classes \[2\].*epoch 0"),
        (lambda: CalibratedEpsilon(C), lambda c: c.update(NAN, Y), r"`values`.*classes \[2\].*epoch 0"),
        (lambda: FRLMultipliers(C), lambda c: c.record(NAN.flip(0), NAN, Y), r"`clean_logits`.*classes \[1\]"),
        (_fawa, lambda c: c.record(NAN.nan_to_num(), NAN, Y), r"`robust_logits`.*classes \[2\]"),
        (lambda: VulnerabilityWeights(C), lambda c: c.update(torch.tensor([1.0, math.nan]), Y), r"`values`.*\[2\]"),
        (lambda: VulnerabilityWeights(C), lambda c: c.update(torch.tensor([1.0, 2.5]), Y), r"integers.*\[2\].*2\.5"),
    ],
    ids=["stats", "temperature", "cfa", "frl", "fawa", "fair-ard-nan", "fair-ard-fraction"],
)
def test_bad_values_are_refused_at_the_call_in_its_one_read(make: Any, call: Any, match: str) -> None:
    ctrl = make()
    before = _snapshot(ctrl)
    with count_reads() as reads, pytest.raises(ValueError, match=match):
        call(ctrl)
    assert reads.count == 2  # the flags, then the classes for the message
    assert _same(_snapshot(ctrl), before)
    ctrl.validate_args = False
    with count_reads() as reads:
        call(ctrl)
    assert reads.count == 0


def test_fawa_step_without_a_split_says_so() -> None:
    with pytest.raises(ValueError, match="Expected a validation split"):
        _fawa().step(None)
