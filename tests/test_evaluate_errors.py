"""Bad and unusual inputs to `evaluate_robustness` and `default_attack_settings`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, odd_outputs, run
from _eval_models import blobs, tiny_mlp
from _models import OddOutput
from torch import nn

from torch_absld import RobustnessReport, default_attack_settings, evaluate_robustness

C = 3
ATTACKS = ("clean", "fgsm", "pgd", "cw")
X, Y = blobs(12, C)


def _loader(y: torch.Tensor = Y, x: torch.Tensor = X, size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _eval(
    loader: object = None, model: nn.Module | None = None, num_classes: object = C, **kwargs: object
) -> RobustnessReport:
    attacks = kwargs.get("attacks", ATTACKS)
    short = {name: {"steps": 3} for name in ("pgd", "cw") if name in attacks}  # type: ignore[operator]
    options: dict[str, object] = {"attacks": ATTACKS, "progress": False, "attack_overrides": short}
    options.update(kwargs)
    return evaluate_robustness(
        tiny_mlp(12, C) if model is None else model,
        _loader() if loader is None else loader,  # type: ignore[arg-type]
        num_classes,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def _same_report(**kwargs: object):
    def check(report: RobustnessReport) -> None:
        want = _eval(**kwargs)
        assert report.to_dict()["results"] == want.to_dict()["results"]

    return check


def _with_empty_batch() -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = _loader()
    return [loader[0], (X[:0], Y[:0]), *loader[1:], (X[:0], Y[:0])]


def _nan_batch() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x = X[:4].clone()
    x[1, 0, 0, 0] = float("nan")
    return [(x, Y[:4])]


CASES: list[Case] = [
    # batches
    good("an empty batch", lambda: _eval(_with_empty_batch()), _same_report()),
    good("an empty first batch", lambda: _eval([(X[:0], Y[:0]), *_loader()]), _same_report()),
    *(
        good(f"labels {dtype}", lambda dtype=dtype: _eval(_loader(Y.to(dtype))), _same_report())
        for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32)
    ),
    bad(
        "labels bool",
        TypeError,
        "`loader`: Expected `target` to hold integer class indices",
        lambda: _eval(_loader(Y.bool())),
    ),
    bad("input NaN", ValueError, "`loader`: Expected `input` to be finite", lambda: _eval(_nan_batch())),
    bad(
        "input int",
        TypeError,
        "`loader`: Expected a floating point `input`",
        lambda: _eval(_loader(x=(X * 255).long())),
    ),
    bad("batch of one tensor", TypeError, r"`loader`: Expected \(input, target\) pairs", lambda: _eval([X])),
    bad("loader a tensor", TypeError, "`loader` to be an iterable", lambda: _eval(X)),
    # the model
    bad(
        "model not a module",
        TypeError,
        "`model` to be an nn.Module",
        lambda: evaluate_robustness(lambda x: x, _loader(), C, progress=False),
    ),  # type: ignore[arg-type]
    *odd_outputs(
        "model",
        lambda kind: _eval(model=OddOutput(tiny_mlp(12, C), kind)),
        r"`model` to return logits of shape \(N, num_classes\)",
    ),
    bad(
        "num_classes above the model's width",
        ValueError,
        r"`model` to return logits of shape \(N, num_classes\) = \(4, 5\)",
        lambda: _eval(num_classes=5, loader=_loader(torch.tensor([0, 1, 4] * 4))),
    ),
    bad(
        "num_classes below the model's width",
        ValueError,
        r"`model` to return logits of shape \(N, num_classes\) = \(4, 2\)",
        lambda: _eval(num_classes=2, loader=_loader(Y % 2)),
    ),
    bad(
        "num_classes above the model's width, PGD only",
        ValueError,
        r"`model` to return logits of shape \(N, num_classes\) = \(4, 5\)",
        lambda: _eval(num_classes=5, loader=_loader(torch.tensor([0, 1, 4] * 4)), attacks=("pgd",)),
    ),
    good(
        "float32 data to a bf16 model",
        lambda: _eval(model=tiny_mlp(12, C).to(torch.bfloat16), attacks=("clean", "pgd")),
        lambda r: _total(r, 12),
    ),
    # arguments
    good("num_classes=np.int64", lambda: _eval(num_classes=np.int64(C)), lambda r: _is_int(r.num_classes)),
    bad("eps=-1", ValueError, "`eps` >= 0", lambda: _eval(eps=-1.0)),
    good("eps=np.float32", lambda: _eval(eps=np.float32(0.0)), lambda r: _is_float(r.eps)),
    bad("seed=1.5", TypeError, "`seed` to be an int", lambda: _eval(seed=1.5)),
    bad(
        "process_group=True",
        TypeError,
        "`process_group` to be a ProcessGroup, None or False",
        lambda: _eval(process_group=True),
    ),
    good("process_group=False", lambda: _eval(process_group=False), _same_report()),
    bad("device 'nonsense'", ValueError, "`device`", lambda: _eval(device="nonsense")),
    bad(
        "attack_overrides a list",
        TypeError,
        "`attack_overrides` to be a mapping",
        lambda: _eval(attack_overrides=[("pgd", {})]),
    ),
    bad(
        "override steps=0",
        ValueError,
        r"`attack_overrides\['pgd'\]\['steps'\]` to be an int >= 1",
        lambda: _eval(attack_overrides={"pgd": {"steps": 0}}),
    ),
    bad(
        "override objective 'kl'",
        ValueError,
        r"`attack_overrides\['cw'\]\['objective'\]` to be one of",
        lambda: _eval(attack_overrides={"cw": {"objective": "kl"}}),
    ),
    # default_attack_settings
    bad("default_attack_settings eps=-1", ValueError, "`eps` >= 0", lambda: default_attack_settings(-1.0)),
]


def _total(report: RobustnessReport, n: int) -> None:
    assert report.num_samples == n


def _is_int(value: object) -> None:
    assert type(value) is int


def _is_float(value: object) -> None:
    assert type(value) is float


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
