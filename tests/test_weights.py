from __future__ import annotations

import pytest
import torch
from _models import tiny_cnn
from torch.testing import assert_close

from torch_absld import load_weights
from torch_absld.weights import extract_state_dict

C = 5


def test_load_weights_tolerates_wrappers_and_nesting(tmp_path):
    source = tiny_cnn(C, seed=5)
    wrapped = {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "teacher.pt"
    torch.save({"epoch": 3, "state_dict": wrapped}, path)
    model = load_weights(tiny_cnn(C, seed=6), path)
    for key, value in source.state_dict().items():
        assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    # A Lightning-style checkpoint: one attribute prefix shared by every key.
    lightning_style = {"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}
    assert_close(load_weights(tiny_cnn(C, seed=6), lightning_style)[0].weight, source[0].weight)
    # Compiled submodule inside a container.
    assert "0.weight" in extract_state_dict({"0._orig_mod.weight": torch.zeros(1)})


def test_load_weights_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`source` to be a checkpoint file.*nope\.pt"):
        load_weights(tiny_cnn(C), tmp_path / "nope.pt")
    with pytest.raises(
        ValueError, match=r"shape mismatch \(2\): 5\.weight: checkpoint \(3, 384\) vs model \(5, 384\), 5\.bias"
    ):
        load_weights(tiny_cnn(C), tiny_cnn(3).state_dict())
    partial = {k: v for k, v in tiny_cnn(C).state_dict().items() if not k.startswith("5.")}
    partial["head.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"(?s)missing \(2\): 5\.weight, 5\.bias.*unexpected \(1\): head\.weight"):
        load_weights(tiny_cnn(C), partial)
    load_weights(tiny_cnn(C), partial, strict=False)
    with pytest.raises(ValueError, match=r"`checkpoint` to hold tensors"):
        load_weights(tiny_cnn(C), {"epoch": 1})
