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
    with pytest.warns(UserWarning, match=r"(?s)loaded 7 of the 9 keys.*missing \(2\)"):
        load_weights(tiny_cnn(C), partial, strict=False)
    with pytest.raises(ValueError, match=r"`checkpoint` to hold tensors"):
        load_weights(tiny_cnn(C), {"epoch": 1})


@pytest.mark.parametrize("strict", [True, False])
def test_a_load_that_matches_no_key_is_refused_and_names_the_prefix(strict):
    weights = tiny_cnn(C).state_dict()
    step_state = {f"{part}.{k}": v for part in ("student", "teacher") for k, v in weights.items()}
    step_state["loss_fn.adv.temperatures"] = torch.ones(C)
    with pytest.raises(ValueError, match=r"(?s)none of its 19 keys.*`student\.` match 9.*`teacher\.` match 9"):
        load_weights(tiny_cnn(C), step_state, strict=strict)
    wrapped = torch.nn.Module()
    wrapped.module = tiny_cnn(C)  # a DDP-like wrapper: the model's keys start with `module.`
    with pytest.raises(ValueError, match=r"model's keys under `module\.` match 9"):
        load_weights(wrapped, weights, strict=strict)
    with pytest.raises(ValueError, match="saved from this architecture"):
        load_weights(tiny_cnn(C), {"other": torch.zeros(1)}, strict=strict)
