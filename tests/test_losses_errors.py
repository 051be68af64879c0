"""Each baseline loss's entry points are wired to the shared checks, read the device once (0 without checks),
and keep their behaviour at the edges: empty batches, bf16 logits, a class masked by -inf."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from _reads import count_reads

from torch_absld.losses.adaad import AdaADLoss, adaad_loss
from torch_absld.losses.ard import ARDLoss, ard_loss
from torch_absld.losses.bat import BATLoss, bat_loss
from torch_absld.losses.cfa import CFALoss, cfa_loss
from torch_absld.losses.fair_ard import FairARDLoss, fair_ard_loss
from torch_absld.losses.frl import FRLLoss, frl_loss
from torch_absld.losses.sat import SATLoss, sat_loss
from torch_absld.losses.trades import TRADESLoss, trades_kl, trades_loss

N, C = 4, 4
LABELS = torch.tensor([1, 3, 2, 2])
WEIGHTS = torch.tensor([1.0, 2.0, 0.5, 1.5])


def logits(count: int, n: int = N, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, C, generator=g) for _ in range(count)]


@dataclass(frozen=True)
class Entry:
    """An entry point: ``call(logits, target, **options)``; ``masked`` is the logits whose -inf masks a class."""

    name: str
    count: int
    call: Callable[..., Any]
    labelled: bool = True
    masked: int | None = None
    module: bool = False


def _module(make: Callable[..., torch.nn.Module]) -> Callable[..., Any]:
    def call(z: list[torch.Tensor], y: torch.Tensor | None, **options: Any) -> Any:
        args = (*z, y) if y is not None else z
        return make(**options)(*args)

    return call


ENTRIES = [
    Entry("sat_loss", 1, lambda z, y, **kw: sat_loss(*z, y, **kw)),
    Entry("SATLoss", 1, _module(SATLoss), module=True),
    Entry("trades_kl", 2, lambda z, y, **kw: trades_kl(*z, **kw), labelled=False, masked=1),
    Entry("trades_loss", 2, lambda z, y, **kw: trades_loss(*z, y, **kw), masked=1),
    Entry("TRADESLoss", 2, _module(TRADESLoss), masked=1, module=True),
    Entry("ard_loss", 3, lambda z, y, **kw: ard_loss(*z, y, **kw), masked=2),
    Entry("ARDLoss", 3, _module(ARDLoss), masked=2, module=True),
    Entry("adaad_loss", 4, lambda z, y, **kw: adaad_loss(*z, **kw), labelled=False, masked=2),
    Entry("AdaADLoss", 4, lambda z, y, **kw: AdaADLoss(**kw)(*z), labelled=False, masked=2, module=True),
    Entry("fair_ard_loss", 3, lambda z, y, **kw: fair_ard_loss(*z, y, WEIGHTS, base="rslad", **kw), masked=2),
    Entry("FairARDLoss", 3, _module(lambda **kw: FairARDLoss(C, **kw)), masked=2, module=True),
    Entry("frl_loss", 2, lambda z, y, **kw: frl_loss(*z, y, WEIGHTS, WEIGHTS, **kw), masked=1),
    Entry("FRLLoss", 2, _module(lambda **kw: FRLLoss(C, **kw)), masked=1, module=True),
    Entry("cfa_loss", 2, lambda z, y, **kw: cfa_loss(*z, y, WEIGHTS, **kw), masked=1),
    Entry("CFALoss", 2, _module(lambda **kw: CFALoss(C, **kw)), masked=1, module=True),
    Entry("bat_loss", 3, lambda z, y, **kw: bat_loss(*z, y, **kw), masked=1),
    Entry("BATLoss", 3, _module(BATLoss), masked=1, module=True),
]
IDS = [entry.name for entry in ENTRIES]


def _call(entry: Entry, z: list[torch.Tensor], y: torch.Tensor | None = LABELS, **options: Any) -> Any:
    return entry.call(z, y if entry.labelled else None, **options)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_reads_the_device_once_and_not_at_all_without_checks(entry: Entry) -> None:
    z = logits(entry.count)
    with count_reads() as reads:
        checked = _call(entry, z)
    assert reads.count == 1, reads.calls
    with count_reads() as reads:
        unchecked = _call(entry, z, validate_args=False)
    assert reads.count == 0, reads.calls
    assert torch.equal(checked, unchecked)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_wired_to_the_value_checks(entry: Entry) -> None:
    z = logits(entry.count)
    z[-1][1, 2] = math.nan
    with pytest.raises(ValueError, match="to hold finite logits"):
        _call(entry, z)
    if entry.labelled:
        with pytest.raises(ValueError, match=r"`target` values in \[0, 4\)"):
            _call(entry, logits(entry.count), torch.tensor([0, 1, 2, 4]))
        z = logits(entry.count)
        assert torch.equal(_call(entry, z, LABELS.to(torch.uint8)), _call(entry, z))  # any integer dtype


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_wired_to_the_static_checks(entry: Entry) -> None:
    z = logits(entry.count)
    z[-1] = z[-1][0]
    with pytest.raises(ValueError, match=r"of shape \(N, C\)"):
        _call(entry, z)
    with pytest.raises(ValueError, match="`reduction` to be one of 'mean', 'sum', 'none'"):
        _call(entry, logits(entry.count), reduction="batchmean")
    if entry.module:
        with pytest.raises(TypeError, match="`validate_args` to be a bool"):
            _call(entry, logits(entry.count), validate_args="yes")


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.module], ids=[e.name for e in ENTRIES if not e.module])
def test_empty_batches_bf16_and_masked_classes(entry: Entry) -> None:
    empty = [t.requires_grad_(True) for t in logits(entry.count, n=0)]
    for reduction in ("mean", "sum"):
        loss = _call(entry, empty, torch.zeros(0, dtype=torch.long), reduction=reduction)
        assert loss.shape == ()
        assert loss.item() == 0.0
        assert loss.requires_grad
    assert _call(entry, empty, torch.zeros(0, dtype=torch.long), reduction="none").shape == (0,)
    z = logits(entry.count)
    low = _call(entry, [t.bfloat16() for t in z])
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, _call(entry, [t.bfloat16().float() for t in z]))
    if entry.masked is not None:
        inputs = [t.requires_grad_(True) for t in logits(entry.count)]
        masked = list(inputs)
        masked[entry.masked] = masked[entry.masked].masked_fill(torch.tensor([True, False, False, False]), -math.inf)
        loss = _call(entry, masked)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(t.grad).all() for t in inputs if t.grad is not None)


def test_trades_kl_of_a_masked_class_is_the_kl_over_the_other_classes() -> None:
    adv, clean = logits(2)
    clean[:, 0] = -math.inf
    p = torch.softmax(clean[:, 1:], dim=1)
    want = (p * (p.log() - torch.log_softmax(adv, dim=1)[:, 1:])).sum(dim=1).mean()
    torch.testing.assert_close(trades_kl(adv, clean), want)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: TRADESLoss(beta=-1.0), ValueError, "`beta` >= 0"),
        (lambda: TRADESLoss(beta="6"), TypeError, "`beta` to be a real number"),
        (lambda: ARDLoss(temperature=0.0), ValueError, "`temperature` > 0"),
        (lambda: ARDLoss(alpha=1.5), ValueError, r"`alpha` in \[0, 1\]"),
        (lambda: AdaADLoss(alpha=-0.1), ValueError, r"`alpha` in \[0, 1\]"),
        (lambda: BATLoss(uniform_weight=-1.0), ValueError, "`uniform_weight` >= 0"),
        (lambda: FairARDLoss(C, base="trades"), ValueError, "`base` to be one of 'ard', 'rslad'"),
        (lambda: FairARDLoss(C, max_weight=0.5), ValueError, "`min_weight` <= `max_weight`"),
        (lambda: FairARDLoss(1.0), TypeError, "`num_classes` to be an int"),
        (lambda: FRLLoss(C, thresold=0.1), TypeError, "unexpected keyword argument 'thresold'"),
        (lambda: FRLLoss(C, limit=2.0), ValueError, r"`limit` in \[0, 1\]"),
        (lambda: CFALoss(C, bogus=1), TypeError, "unexpected keyword argument 'bogus'"),
        (lambda: CFALoss(C, lambda_eps=-1.0), ValueError, "`lambda_eps` >= 0"),
    ],
)
def test_options_are_checked_at_construction(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_options_accept_numpy_numbers() -> None:
    assert TRADESLoss(beta=np.float32(2.0)).beta == 2.0
    assert type(FairARDLoss(np.int64(C)).num_classes) is int


@pytest.mark.parametrize(
    "call",
    [
        lambda w: fair_ard_loss(*logits(3), LABELS, w),
        lambda w: frl_loss(*logits(2), LABELS, w, WEIGHTS),
        lambda w: cfa_loss(*logits(2), LABELS, w),
    ],
    ids=["fair_ard_loss", "frl_loss", "cfa_loss"],
)
def test_class_vectors_are_checked(call: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError, match="to hold finite values >= 0"):
        call(-WEIGHTS)
    with pytest.raises(ValueError, match=r"to be a floating point tensor of shape \(4,\)"):
        call(torch.ones(5))
    with pytest.raises(ValueError, match="on the device"):
        call(WEIGHTS.to("meta"))


@pytest.mark.parametrize(
    ("loss_fn", "values"),
    [(FairARDLoss(C), torch.tensor([1.0, 2.0, 3.0, 4.0])), (CFALoss(C), logits(1)[0])],
    ids=["FairARDLoss", "CFALoss"],
)
def test_record_is_wired_and_reads_once(loss_fn: Any, values: torch.Tensor) -> None:
    with count_reads() as reads:
        loss_fn.record(values, LABELS)
    assert reads.count == 1, reads.calls
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\)"):
        loss_fn.record(values, LABELS + 1)
    loss_fn.validate_args = False
    if isinstance(loss_fn, FairARDLoss):
        loss_fn.vulnerability.validate_args = False
    else:
        loss_fn.calibration.validate_args = False
    with count_reads() as reads:
        loss_fn.record(values, LABELS)
    assert reads.count == 0, reads.calls
