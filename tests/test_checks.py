"""The shared checks of `torch_absld._internal.checks`: each passes good input and refuses bad input clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import bad, good, ids, run
from _reads import count_reads

from torch_absld._internal import checks as c

INF, NAN = float("inf"), float("nan")
LOGITS = torch.randn(2, 3)


def _flags(*checks: c.ValueCheck) -> None:
    c.raise_first(checks)


CASES = [
    good("finite number numpy", lambda: c.check_finite_number(np.float32(0.5), "x"), lambda v: type(v) is float),
    bad(
        "finite number bool",
        TypeError,
        "`x` to be a real number, but got bool",
        lambda: c.check_finite_number(True, "x"),
    ),
    bad("finite number str", TypeError, "`x` to be a real number", lambda: c.check_finite_number("1", "x")),
    bad("finite number nan", ValueError, "`x` to be finite, but got nan", lambda: c.check_finite_number(NAN, "x")),
    good("positive zero allowed", lambda: c.check_positive(0, "x", allow_zero=True)),
    bad("positive zero", ValueError, "`x` > 0, but got 0.0", lambda: c.check_positive(0, "x")),
    bad("positive negative", ValueError, "`x` >= 0, but got -1.0", lambda: c.check_positive(-1, "x", allow_zero=True)),
    good("integer numpy", lambda: c.check_integer(np.int64(3), "k", minimum=1), lambda v: type(v) is int),
    bad("integer below", ValueError, "`k` to be an int >= 1, but got 0", lambda: c.check_integer(0, "k", minimum=1)),
    bad(
        "integer float", ValueError, "`k` to be an int >= 1, but got 1.5", lambda: c.check_integer(1.5, "k", minimum=1)
    ),
    bad("integer bool", ValueError, "`k` to be an int", lambda: c.check_integer(True, "k", minimum=0)),
    good("num_classes numpy", lambda: c.check_num_classes(np.int64(3), 2), lambda v: type(v) is int),
    bad("num_classes small", ValueError, "`num_classes` >= 2, but got 1", lambda: c.check_num_classes(1, 2)),
    bad(
        "num_classes float", TypeError, "`num_classes` to be an int, but got float", lambda: c.check_num_classes(2.5, 2)
    ),
    bad("num_classes bool", TypeError, "`num_classes` to be an int", lambda: c.check_num_classes(True, 1)),
    bad("num_classes str", TypeError, "`num_classes` to be an int", lambda: c.check_num_classes("3", 1)),
    good("unit interval", lambda: c.check_unit_interval(1, "a")),
    bad("unit interval above", ValueError, r"`a` in \[0, 1\], but got 1.5", lambda: c.check_unit_interval(1.5, "a")),
    bad("bool int", TypeError, "`flag` to be a bool, but got int", lambda: c.check_bool(1, "flag")),
    bad(
        "choice",
        ValueError,
        "`mode` to be one of 'a', 'b', but got 'c'",
        lambda: c.check_choice("c", "mode", ("a", "b")),
    ),
    good("options known", lambda: c.check_options({"eps": 1}, ("eps", "steps"), "PGD")),
    bad(
        "options unknown",
        TypeError,
        "options of PGD to be among eps, steps, but got unknown `epz`. Did you mean `eps`",
        lambda: c.check_options({"epz": 1}, ("eps", "steps"), "PGD"),
    ),
    good("process group False", lambda: c.check_process_group(False), lambda v: v is False),
    bad(
        "process group True",
        TypeError,
        "`process_group` to be a ProcessGroup, None or False",
        lambda: c.check_process_group(True),
    ),
    bad(
        "device meta",
        ValueError,
        "`x` on the device, but got a tensor on the meta device",
        lambda: c.check_device(torch.zeros(1, device="meta"), None, "x", "m"),
    ),
    good(
        "labels uint8 to int64",
        lambda: c.check_integer_labels(torch.tensor([1], dtype=torch.uint8), 2),
        lambda t: t.dtype == torch.int64,
    ),
    bad(
        "labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: c.check_integer_labels(torch.zeros(2), 3),
    ),
    bad(
        "labels bool",
        TypeError,
        "integer class indices",
        lambda: c.check_integer_labels(torch.zeros(2, dtype=torch.bool), 3),
    ),
    bad(
        "labels list", TypeError, "`target` to be a torch.Tensor, but got list", lambda: c.check_integer_labels([0], 3)
    ),  # type: ignore[arg-type]
    bad(
        "labels one-hot",
        ValueError,
        r"`target` of shape \(N,\), but got \(2, 3\). Pass class indices",
        lambda: c.check_integer_labels(torch.zeros(2, 3, dtype=torch.long), 3),
    ),
    bad(
        "labels batch",
        ValueError,
        r"with N = 3, but got \(2,\)",
        lambda: c.check_integer_labels(torch.zeros(2, dtype=torch.long), 3, batch_size=3),
    ),
    bad(
        "labels range",
        ValueError,
        r"`target` values in \[0, 3\), but got values in \[0, 3\]",
        lambda: c.check_integer_labels(torch.tensor([0, 3]), 3),
    ),
    bad(
        "labels negative",
        ValueError,
        r"`y` values in \[0, N\)",
        lambda: c.check_integer_labels(torch.tensor([-1]), None, name="y"),
    ),
    good("labels range unchecked", lambda: c.check_integer_labels(torch.tensor([5]), 3, check_values=False)),
    bad(
        "logits int",
        TypeError,
        "`z` to be floating point logits",
        lambda: c.check_logits(torch.zeros(2, 3, dtype=torch.long), "z"),
    ),
    bad("logits 1d", ValueError, r"`z` of shape \(N, C\), but got \(3,\)", lambda: c.check_logits(torch.zeros(3), "z")),
    bad(
        "logits classes",
        ValueError,
        r"`z` of shape \(N, 4\) for num_classes = 4",
        lambda: c.check_logits(LOGITS, "z", 4),
    ),
    good("logits alike", lambda: c.check_logits_alike((("a", LOGITS), ("b", LOGITS))), lambda v: v == 3),
    bad(
        "logits alike shapes",
        ValueError,
        r"`a`, `b` of one shape \(N, C\), but got \(2, 3\), \(2, 4\)",
        lambda: c.check_logits_alike((("a", LOGITS), ("b", torch.zeros(2, 4)))),
    ),
    good("probability flag ok", lambda: _flags(c.probability_flag(torch.softmax(LOGITS, 1), "p"))),
    bad(
        "probability flag logits",
        ValueError,
        "`p` to hold probability vectors.*Pass softmax outputs",
        lambda: _flags(c.probability_flag(LOGITS, "p")),
    ),
    bad(
        "label flag",
        ValueError,
        r"`target` values in \[0, 3\)",
        lambda: _flags(c.label_range_flag(torch.tensor([4]), 3)),
    ),
    good("label flag ok", lambda: _flags(c.label_range_flag(torch.tensor([2]), 3))),
    bad(
        "logit flag nan",
        ValueError,
        "`t` to return finite logits",
        lambda: _flags(c.logit_flag(torch.tensor([[NAN, 0.0]]), "t", "return")),
    ),
    bad(
        "logit flag +inf",
        ValueError,
        "`t` to hold finite logits",
        lambda: _flags(c.logit_flag(torch.tensor([[INF, 0.0]]), "t")),
    ),
    bad(
        "logit flag -inf row",
        ValueError,
        "-inf everywhere",
        lambda: _flags(c.logit_flag(torch.tensor([[-INF, -INF]]), "t")),
    ),
    good("logit flag -inf masks", lambda: _flags(c.logit_flag(torch.tensor([[-INF, 1.0]]), "t"))),
    bad(
        "input flag range",
        ValueError,
        r"`input` values in \[clip_min, clip_max\] = \[0.0, 1.0\].*Normalize",
        lambda: _flags(c.input_flag(torch.tensor([2.0]), 0.0, 1.0)),
    ),
    bad(
        "input flag nan",
        ValueError,
        "`input` to be finite, but it holds NaN",
        lambda: _flags(c.input_flag(torch.tensor([NAN]), 0.0, 1.0)),
    ),
    bad(
        "temperature flag",
        ValueError,
        r"`tau` to hold finite temperatures > 0, but got \[1.0, 0.0\]",
        lambda: _flags(c.temperature_flag(torch.tensor([1.0, 0.0]), "tau")),
    ),
    bad(
        "probability flag",
        ValueError,
        "`p` to hold probability vectors",
        lambda: _flags(c.probability_flag(torch.tensor([[0.5, 0.6]]), "p")),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case):
    run(case)


def test_float32_math_whatever_the_dtype():
    assert c.at_least_float32(torch.zeros(1, dtype=torch.bfloat16)).dtype == torch.float32
    assert c.at_least_float32(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64


def test_deferred_flags_are_read_with_the_next_check_in_one_read():
    c.defer([c.label_range_flag(torch.tensor([5]), 3)])
    with count_reads() as counter, pytest.raises(ValueError, match=r"`target` values in \[0, 3\)"):
        c.raise_first([c.logit_flag(LOGITS, "t")])
    assert counter.calls == ["tolist", "tolist"]  # one read of the flags; the message reads the range
    with count_reads() as counter:
        c.raise_first()  # nothing pending: no read
        c.raise_first([c.label_range_flag(torch.tensor([1]), 3), c.logit_flag(LOGITS, "t")])
    assert counter.count == 1


def test_the_first_bad_flag_raises():
    with pytest.raises(ValueError, match="`b`"):
        c.raise_first(
            [
                c.logit_flag(LOGITS, "a"),
                c.logit_flag(torch.full((1, 2), NAN), "b"),
                c.logit_flag(torch.full((1, 2), NAN), "c"),
            ]
        )
