"""Bad and unusual inputs to the attack: `PGDConfig`, `pgd`, `kl_pgd`, `KLPGDAttack`, `attack_objective`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, identical, ids, odd_outputs, run
from _models import OddOutput
from torch import nn

from torch_absld import KLPGDAttack, PGDConfig, kl_pgd, pgd
from torch_absld.attack import attack_objective

N, C = 4, 5
LABELS = [0, 4, 2, 2]
EPS = 8 / 255


def _model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, C)).to(dtype)


def _x(n: int = N) -> torch.Tensor:
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(1))


def _soft(c: int = C, n: int = N) -> torch.Tensor:
    return torch.softmax(torch.randn(n, c, generator=torch.Generator().manual_seed(2)), 1)


def _pgd(
    target: object = None, *, model: object = None, input: torch.Tensor | None = None, **kwargs: object
) -> torch.Tensor:
    kwargs.setdefault("random_start", None)
    kwargs.setdefault("steps", 2)
    target = torch.tensor(LABELS) if target is None else target
    return pgd(_model() if model is None else model, _x() if input is None else input, target, **kwargs)  # type: ignore[arg-type]


def _same_as_long_labels(**kwargs: object):
    def check(x_adv: torch.Tensor) -> None:
        assert torch.equal(x_adv, _pgd(**kwargs))

    return check


def _in_ball(input: torch.Tensor, eps: float = EPS):
    def check(x_adv: torch.Tensor) -> None:
        assert x_adv.shape == input.shape
        assert x_adv.dtype == input.dtype
        assert ((x_adv.double() - input.double()).abs() <= eps).all()
        assert x_adv.min() >= 0
        assert x_adv.max() <= 1

    return check


def _nan_input() -> torch.Tensor:
    x = _x()
    x[1, 0, 0, 0] = float("nan")
    return x


def _nan_soft() -> torch.Tensor:
    soft = _soft()
    soft[0, 1] = float("nan")
    return soft


CASES: list[Case] = [
    # PGDConfig
    good("config eps=np.float32", lambda: PGDConfig(eps=np.float32(0.5)), lambda c: _is_float(c.eps)),
    good("config steps=np.int64", lambda: PGDConfig(steps=np.int64(3)), lambda c: _is_int(c.steps)),
    bad("pgd config not a PGDConfig", TypeError, "`config` to be a PGDConfig", lambda: _pgd(config={"eps": 0.1})),
    # pgd: arguments
    bad("pgd seed=1.5", TypeError, "`seed` to be an int or None", lambda: _pgd(seed=1.5)),
    good(
        "pgd seed=np.int64",
        lambda: _pgd(seed=np.int64(3), random_start="uniform"),
        lambda x: identical(x, _pgd(seed=3, random_start="uniform")),
    ),
    bad("pgd objective", ValueError, "`objective` to be one of", lambda: _pgd(objective="bogus")),
    bad("pgd model not a module", TypeError, "`model` to be an nn.Module", lambda: _pgd(model=lambda x: x)),
    bad(
        "pgd input int",
        TypeError,
        "`input` to be a floating point tensor",
        lambda: _pgd(input=torch.ones(N, 3, 2, 2, dtype=torch.long)),
    ),
    bad("pgd start shape", ValueError, "`start` to be a tensor of shape", lambda: _pgd(start=torch.rand(N, 12))),
    # pgd: labels and soft labels
    *(
        good(f"pgd labels {dtype}", lambda dtype=dtype: _pgd(torch.tensor(LABELS, dtype=dtype)), _same_as_long_labels())
        for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32)
    ),
    good(
        "pgd cw labels int32",
        lambda: _pgd(torch.tensor(LABELS, dtype=torch.int32), objective="cw"),
        _same_as_long_labels(objective="cw"),
    ),
    bad(
        "pgd labels bool",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _pgd(torch.tensor([True, False, True, True])),
    ),
    bad("pgd target list", TypeError, "`target` to be a torch.Tensor", lambda: _pgd(LABELS)),
    bad(
        "pgd ce labels >= C",
        ValueError,
        r"`target` values in \[0, 5\)",
        lambda: _pgd(torch.tensor([0, 1, 2, 5]), objective="ce"),
    ),
    bad(
        "pgd labels N mismatch", ValueError, r"`target` of shape \(N,\) with N = 4", lambda: _pgd(torch.tensor([0, 1]))
    ),
    bad(
        "kl_pgd soft labels wrong C",
        ValueError,
        r"`target` of shape \(N, C\) = \(4, 5\)",
        lambda: kl_pgd(_model(), _x(), _soft(C + 1)),
    ),
    bad(
        "kl_pgd soft labels wrong N",
        ValueError,
        r"`target` of shape \(N, C\) with N = 4",
        lambda: kl_pgd(_model(), _x(), _soft(n=3)),
    ),
    bad(
        "kl_pgd soft labels NaN",
        ValueError,
        "`target` to hold probability vectors",
        lambda: kl_pgd(_model(), _x(), _nan_soft()),
    ),
    # pgd: input values and devices
    bad("pgd input NaN", ValueError, "`input` to be finite", lambda: _pgd(input=_nan_input())),
    bad(
        "pgd input on meta",
        ValueError,
        "`input` on the device",
        lambda: _pgd(input=torch.rand(N, 3, 2, 2, device="meta")),
    ),
    bad("pgd target on meta", ValueError, "`target` on the device", lambda: _pgd(torch.tensor(LABELS, device="meta"))),
    # pgd: the model's output
    *odd_outputs(
        "pgd model", lambda kind: _pgd(model=OddOutput(_model(), kind)), r"`model` to return logits of shape \(N, C\)"
    ),
    *odd_outputs(
        "kl_pgd model",
        lambda kind: kl_pgd(OddOutput(_model(), kind), _x(), _soft()),
        r"`model` to return logits of shape \(N, C\)",
        kinds=("tuple",),
    ),
    # pgd: per-sample radii
    bad(
        "pgd eps tensor shape",
        ValueError,
        r"`eps` to be a float or a floating point tensor of shape \(N,\)",
        lambda: _pgd(eps=torch.ones(N + 1)),
    ),
    bad(
        "pgd eps tensor negative",
        ValueError,
        "every `eps` finite and >= 0",
        lambda: _pgd(eps=torch.tensor([0.1, -0.1, 0.1, 0.1])),
    ),
    bad(
        "pgd step_size tensor 0", ValueError, "every `step_size` finite and > 0", lambda: _pgd(step_size=torch.zeros(N))
    ),
    good(
        "pgd per-sample eps",
        lambda: _pgd(eps=torch.tensor([0.0, 0.01, 0.05, 0.1]), random_start="uniform", seed=0),
        lambda x: _per_sample_ball(x, [0.0, 0.01, 0.05, 0.1]),
    ),
    # pgd: empty batches and dtypes
    good(
        "pgd empty batch",
        lambda: _pgd(input=_x(0), target=torch.zeros(0, dtype=torch.long), random_start="uniform"),
        lambda x: _shape(x, (0, 3, 2, 2)),
    ),
    good("kl_pgd empty batch", lambda: kl_pgd(_model(), _x(0), _soft(n=0)), lambda x: _shape(x, (0, 3, 2, 2))),
    good("pgd float32 input to a bf16 model", lambda: _pgd(model=_model(torch.bfloat16), eps=0.1), _in_ball(_x(), 0.1)),
    good("pgd float32 input to an fp16 model", lambda: _pgd(model=_model(torch.float16), eps=0.1), _in_ball(_x(), 0.1)),
    good(
        "pgd bf16 input to a bf16 model",
        lambda: _pgd(model=_model(torch.bfloat16), input=_x().bfloat16(), eps=0.1),
        _in_ball(_x().bfloat16(), 0.1),
    ),
    good(
        "pgd float64 input to a float32 model", lambda: _pgd(input=_x().double(), eps=0.1), _in_ball(_x().double(), 0.1)
    ),
    # the eps-ball, exactly, in the returned dtype (the property test is tests/test_attack_dtypes.py)
    *(
        good(
            f"eps-ball {mode} {str(dtype)[6:]} eps={eps:.3g}",
            lambda dtype=dtype, mode=mode, eps=eps: _ball_attack(dtype, mode, eps),
            lambda result, eps=eps: _exactly_inside(*result, eps),
        )
        for dtype in (torch.float32, torch.bfloat16, torch.float16)
        for mode in ("autocast", "cast model")
        for eps in (1e-3, 8 / 255, 0.1)
    ),
    # attack_objective
    bad(
        "attack_objective unknown",
        ValueError,
        "`objective` to be one of 'kl', 'ce', 'cw'",
        lambda: attack_objective(torch.randn(N, C), torch.tensor(LABELS), "bogus"),
    ),  # type: ignore[arg-type]
    bad(
        "attack_objective kl target wrong C",
        ValueError,
        r"`target` of shape \(N, C\) = \(4, 5\)",
        lambda: attack_objective(torch.randn(N, C), _soft(C + 1), "kl"),
    ),
    bad(
        "attack_objective cw labels >= C",
        ValueError,
        r"`target` values in \[0, 5\)",
        lambda: attack_objective(torch.randn(N, C), torch.tensor([0, 1, 9, 2]), "cw"),
    ),
    good(
        "attack_objective cw int32 labels",
        lambda: attack_objective(torch.eye(N, C), torch.tensor([0, 1, 2, 3], dtype=torch.int32), "cw"),
        lambda v: identical(v, torch.tensor(-4.0)),
    ),
    good(
        "attack_objective empty",
        lambda: attack_objective(torch.zeros(0, C), torch.zeros(0, dtype=torch.long), "cw"),
        lambda v: identical(v, torch.tensor(0.0)),
    ),
    # KLPGDAttack
    bad("KLPGDAttack model lambda", TypeError, "`model` to be an nn.Module", lambda: KLPGDAttack(lambda x: x)),  # type: ignore[arg-type]
    bad("KLPGDAttack eps tensor", TypeError, "`eps` to be a float", lambda: KLPGDAttack(_model(), eps=torch.ones(N))),  # type: ignore[arg-type]
    bad(
        "KLPGDAttack objective",
        ValueError,
        "`objective` to be one of",
        lambda: KLPGDAttack(_model(), objective="bogus"),
    ),  # type: ignore[arg-type]
]


def _ball_attack(dtype: torch.dtype, mode: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    model, x = _model(), torch.rand(16, 3, 2, 2, generator=torch.Generator().manual_seed(5))
    x[0], x[1] = 0.0, 1.0
    y = torch.arange(16) % C
    if mode == "cast model":
        model, x = model.to(dtype), x.to(dtype)
    autocast = mode == "autocast" and dtype != torch.float32
    with torch.autocast("cpu", dtype=dtype, enabled=autocast):
        x_adv = pgd(model, x, y, eps=eps, step_size=eps / 3, steps=5, random_start="uniform", seed=0)
    return x_adv, x


def _exactly_inside(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert x_adv.dtype == x.dtype
    assert ((x_adv.double() - x.double()).abs() <= eps).all()
    assert x_adv.double().min() >= 0
    assert x_adv.double().max() <= 1


def _per_sample_ball(x_adv: torch.Tensor, radii: list[float]) -> None:
    delta = (x_adv.double() - _x().double()).abs().flatten(1).amax(1)
    assert (delta <= torch.tensor(radii, dtype=torch.float64)).all()
    assert delta[0] == 0


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


def _is_int(value: object) -> None:
    assert type(value) is int


def _is_float(value: object) -> None:
    assert type(value) is float


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
