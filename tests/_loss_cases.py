"""Rows that every baseline loss's table holds (``tests/test_losses_*_errors.py``).

A loss is described by the names of its logits arguments and a call ``call(logits, target, **options)``;
:func:`loss_rows` makes its rows for labels, logits and empty batches, each checked against the same
call with int64 labels or by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from _cases import Case, bad, good

N, C = 4, 4
LABELS = (1, 3, 2, 2)  # no sample of class 0: labels read as a mask would select every class
INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32)
NAN, INF = float("nan"), float("inf")

Call = Callable[..., Any]


def labels(dtype: torch.dtype = torch.long) -> torch.Tensor:
    return torch.tensor(LABELS, dtype=dtype)


def logits(count: int, n: int = N, c: int = C, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, generator=g) for _ in range(count)]


@dataclass(frozen=True)
class Loss:
    """A loss under test: ``call(logits, target, **options)``; ``masked`` is the logits argument whose
    ``-inf`` masks a class (the distribution a KL is taken from), ``None`` when there is none."""

    prefix: str
    names: tuple[str, ...]
    call: Call
    labelled: bool = True
    masked: int | None = None


def same_as(expected: Callable[[], Any]) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        torch.testing.assert_close(result, expected())

    return check


def zero_in_graph(loss: torch.Tensor) -> None:
    assert loss.shape == ()
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()


def finite_with_finite_gradients(result: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    loss, inputs = result
    assert torch.isfinite(loss).all(), loss
    loss.sum().backward()
    grads = [tensor.grad for tensor in inputs if tensor.grad is not None]  # a teacher gets none
    assert grads
    for grad in grads:
        assert torch.isfinite(grad).all(), grad


def _with(count: int, index: int, value: torch.Tensor) -> list[torch.Tensor]:
    tensors = logits(count)
    tensors[index] = value
    return tensors


def _nan_at(count: int, index: int, value: float = NAN) -> list[torch.Tensor]:
    tensors = logits(count)
    tensors[index][1, 2] = value
    return tensors


def _masked(loss: Loss) -> tuple[torch.Tensor, list[torch.Tensor]]:
    tensors = [t.requires_grad_(True) for t in logits(len(loss.names))]
    inputs = list(tensors)
    tensors[loss.masked] = tensors[loss.masked].masked_fill(  # type: ignore[index]
        torch.tensor([True, False, False, False]), -INF
    )  # class 0, never a label: p = 0 there
    target = labels() if loss.labelled else None
    return loss.call(tensors, target), inputs


def _empty(loss: Loss, reduction: str) -> torch.Tensor:
    tensors = [t.requires_grad_(True) for t in logits(len(loss.names), n=0)]
    return loss.call(tensors, torch.zeros(0, dtype=torch.long) if loss.labelled else None, reduction=reduction)


def label_rows(prefix: str, call: Callable[[torch.Tensor], Any], *, classes: int = C) -> list[Case]:
    """Rows for the labels of ``call(target)``: any integer dtype as int64, and the bad ones."""
    rows = [
        good(f"{prefix} labels {dtype}", lambda dtype=dtype: call(labels(dtype)), same_as(lambda: call(labels())))
        for dtype in INT_DTYPES
    ]
    return [
        *rows,
        bad(f"{prefix} labels bool", TypeError, "`target` to hold integer class indices", lambda: call(labels() > 1)),
        bad(
            f"{prefix} labels float", TypeError, "`target` to hold integer class indices", lambda: call(labels() * 1.0)
        ),
        bad(
            f"{prefix} labels one-hot",
            ValueError,
            r"`target` of shape \(N,\)",
            lambda: call(torch.eye(classes)[:N].long()),
        ),
        bad(
            f"{prefix} labels >= C",
            ValueError,
            rf"`target` values in \[0, {classes}\)",
            lambda: call(torch.tensor([0, 1, 2, classes])),
        ),
        bad(f"{prefix} labels < 0", ValueError, r"`target` values in \[0, ", lambda: call(torch.tensor([0, -1, 2, 2]))),
        bad(
            f"{prefix} labels N mismatch",
            ValueError,
            r"`target` of shape \(N,\) with N = 4",
            lambda: call(labels()[:3]),
        ),
        bad(f"{prefix} labels on meta", ValueError, "`target` on the device", lambda: call(labels().to("meta"))),
        bad(f"{prefix} labels a list", TypeError, "`target` to be a torch.Tensor", lambda: call(list(LABELS))),
    ]


def loss_rows(loss: Loss) -> list[Case]:
    """The rows of one loss: labels (when it takes them), each logits argument, masking, empty batches."""
    count, first, last = len(loss.names), loss.names[0], loss.names[-1]
    target = labels() if loss.labelled else None
    rows: list[Case] = []
    if loss.labelled:
        rows += label_rows(loss.prefix, lambda y: loss.call(logits(count), y))
    for index, name in enumerate(loss.names):
        rows.append(
            bad(
                f"{loss.prefix} {name} NaN",
                ValueError,
                rf"`{name}` to hold finite logits",
                lambda index=index: loss.call(_nan_at(count, index), target),
            )
        )
    rows += [
        bad(
            f"{loss.prefix} {first} +inf",
            ValueError,
            rf"`{first}` to hold finite logits",
            lambda: loss.call(_nan_at(count, 0, INF), target),
        ),
        bad(
            f"{loss.prefix} {first} 1-D",
            ValueError,
            rf"`{first}` of shape \(N, C\)",
            lambda: loss.call(_with(count, 0, torch.zeros(N)), target),
        ),
        bad(
            f"{loss.prefix} {first} int",
            TypeError,
            rf"`{first}` to be floating point logits",
            lambda: loss.call(_with(count, 0, torch.zeros(N, C, dtype=torch.long)), target),
        ),
        bad(
            f"{loss.prefix} {first} a list",
            TypeError,
            rf"`{first}` to be a torch.Tensor",
            lambda: loss.call(_with(count, 0, [[0.0] * C] * N), target),  # type: ignore[arg-type]
        ),
        bad(
            f"{loss.prefix} {last} on meta",
            ValueError,
            rf"`{last}` on the device",
            lambda: loss.call(_with(count, count - 1, torch.zeros(N, C, device="meta")), target),
        ),
        good(
            f"{loss.prefix} empty 'mean'",
            lambda: _empty(loss, "mean"),
            zero_in_graph,
        ),
        good(f"{loss.prefix} empty 'sum'", lambda: _empty(loss, "sum"), zero_in_graph),
        good(
            f"{loss.prefix} bf16 logits",
            lambda: loss.call([t.bfloat16() for t in logits(count)], target),
            lambda out: _float32_close(out, loss.call([t.bfloat16().float() for t in logits(count)], target)),
        ),
    ]
    if count > 1:
        rows.append(
            bad(
                f"{loss.prefix} {last} of another C",
                ValueError,
                rf"`{last}` of the shape of `{first}`",
                lambda: loss.call(_with(count, count - 1, torch.zeros(N, C + 1)), target),
            )
        )
    if loss.masked is not None:
        rows.append(
            good(
                f"{loss.prefix} {loss.names[loss.masked]} -inf (masking)",
                lambda: _masked(loss),
                finite_with_finite_gradients,
            )
        )
    return rows


def _float32_close(out: torch.Tensor, want: torch.Tensor) -> None:
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, want)


Option = tuple[str, Any, "type[BaseException] | None", str]


def option_rows(prefix: str, make: Callable[..., Any], cases: Sequence[Option]) -> list[Case]:
    """``(name, value, error, match)`` rows for ``make(**{name: value})``; ``error`` None: a valid value."""
    rows = []
    for name, value, error, match in cases:
        shown = value if isinstance(value, float) and not math.isfinite(value) else repr(value)
        label = f"{prefix} {name}={shown}"
        if error is None:
            rows.append(good(label, lambda name=name, value=value: make(**{name: value})))
        else:
            rows.append(bad(label, error, match, lambda name=name, value=value: make(**{name: value})))
    return rows
