from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from torch_absld import KLPGDAttack, Normalize

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2471, 0.2435, 0.2616)


def test_matches_per_channel_formula():
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    got = Normalize(MEAN, STD)(x.float())
    want = torch.empty_like(x)
    for c in range(3):
        want[:, c] = (x[:, c] - MEAN[c]) / STD[c]
    assert_close(got, want.float())
    assert got.dtype == torch.float32


def test_matches_torchvision_normalize():
    tv = pytest.importorskip("torchvision.transforms.v2.functional")
    x = torch.rand(4, 3, 6, 6)
    assert_close(Normalize(MEAN, STD)(x), tv.normalize(x, list(MEAN), list(STD)))


def test_dtype_memory_format_and_other_ranks():
    norm = Normalize(torch.tensor(MEAN), torch.tensor(STD))
    x = torch.rand(2, 3, 4, 4).to(memory_format=torch.channels_last)
    out = norm(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert norm(x.bfloat16()).dtype == torch.bfloat16
    assert norm(torch.rand(5, 3)).shape == (5, 3)  # (N, C) features
    assert norm(torch.rand(2, 3, 4, 4, 4)).shape == (2, 3, 4, 4, 4)  # volumes


def test_buffers_follow_to_and_state_dict():
    norm = Normalize(MEAN, STD).to(torch.float64)
    assert norm.mean.dtype == torch.float64
    assert set(norm.state_dict()) == {"mean", "std"}
    assert Normalize(MEAN, STD, persistent=False).state_dict() == {}
    assert not list(norm.parameters())


def test_gradient_flows_to_pixels_for_attacks():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    model = nn.Sequential(Normalize(MEAN, STD), backbone)
    x = torch.rand(3, 3, 4, 4)
    x_adv = KLPGDAttack(model, eps=4 / 255, steps=2)(x, torch.tensor([0, 1, 2]))
    assert (x_adv - x).abs().max() <= 4 / 255 + 1e-7
    assert x_adv.min() >= 0
    assert x_adv.max() <= 1
    # The model on pixels equals the backbone on normalised inputs.
    std = torch.tensor(STD).view(1, 3, 1, 1)
    assert_close(model(x), backbone((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / std))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`mean` and `std` with one value per channel each, but got 3 and 2"):
        Normalize(MEAN, (0.2, 0.2))
    with pytest.raises(ValueError, match=r"`std` > 0 in every channel"):
        Normalize(MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match=r"`mean` to be finite"):
        Normalize((0.5, float("nan")), (1.0, 1.0))
    with pytest.raises(TypeError, match=r"`mean` to be a sequence of floats or a tensor, but got float"):
        Normalize(0.5, (1.0,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`std` to hold real numbers"):
        Normalize((0.5,), ("1",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`mean` to hold one value per channel, but got an empty"):
        Normalize((), ())
    with pytest.raises(ValueError, match=r"`mean` of shape \(C,\), but got \(3, 2\)"):
        Normalize(torch.ones(3, 2), torch.ones(3))
    norm = Normalize(MEAN, STD)
    with pytest.raises(ValueError, match=r"`input` of shape \(N, 3, \.\.\.\), but got \(2, 4, 4, 3\)"):
        norm(torch.rand(2, 4, 4, 3))
    with pytest.raises(TypeError, match=r"`input` to be a floating point tensor, but got torch.uint8"):
        norm(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


def test_repr():
    assert "mean=(0.5, 0.25)" in repr(Normalize((0.5, 0.25), (1.0, 2.0)))
