"""Bad and unusual inputs to `load_weights`."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from _cases import Case, bad, good, ids, run
from torch import nn

from torch_absld import load_weights

DIR = tempfile.mkdtemp(prefix="absld_weights_cases_")


def _file(name: str, data: bytes) -> str:
    path = os.path.join(DIR, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _saved(obj: object, name: str) -> str:
    path = os.path.join(DIR, name)
    torch.save(obj, path)
    return path


def _truncated() -> str:
    path = _saved(nn.Linear(3, 2).state_dict(), "full.pt")
    with open(path, "rb") as f:
        data = f.read()
    return _file("truncated.pt", data[: len(data) // 2])


def _not_suggesting_unsafe_loading(call):
    def checked() -> object:
        try:
            return call()
        except Exception as error:
            if "weights_only=False" in str(error):
                raise RuntimeError("an unreadable file must not suggest unsafe loading (weights_only=False)") from error
            raise

    return checked


CASES: list[Case] = [
    bad(
        "random bytes",
        ValueError,
        "`source` to be a checkpoint written by torch.save",
        _not_suggesting_unsafe_loading(lambda: load_weights(nn.Linear(3, 2), _file("random.pt", bytes(range(7, 107))))),
    ),
    bad(
        "text file",
        ValueError,
        "`source` to be a checkpoint written by torch.save",
        _not_suggesting_unsafe_loading(lambda: load_weights(nn.Linear(3, 2), _file("text.pt", b"hello\n"))),
    ),
    bad(
        "empty file",
        ValueError,
        "`source` .* is empty",
        _not_suggesting_unsafe_loading(lambda: load_weights(nn.Linear(3, 2), _file("empty.pt", b""))),
    ),
    bad(
        "truncated file",
        ValueError,
        "`source` to be a checkpoint written by torch.save",
        _not_suggesting_unsafe_loading(lambda: load_weights(nn.Linear(3, 2), _truncated())),
    ),
    bad(
        "missing file",
        FileNotFoundError,
        "`source` to be a checkpoint file",
        lambda: load_weights(nn.Linear(3, 2), os.path.join(DIR, "nope.pt")),
    ),
    bad(
        "a directory", FileNotFoundError, "`source` to be a checkpoint file", lambda: load_weights(nn.Linear(3, 2), DIR)
    ),
    bad(
        "model None", TypeError, "`model` to be an nn.Module", lambda: load_weights(None, {"weight": torch.zeros(2, 3)})
    ),  # type: ignore[arg-type]
    bad("source int", TypeError, "`source` to be a path or a state dict", lambda: load_weights(nn.Linear(3, 2), 3)),  # type: ignore[arg-type]
    bad(
        "wrong architecture",
        ValueError,
        "shape mismatch",
        lambda: load_weights(nn.Linear(3, 2), nn.Linear(3, 4).state_dict()),
    ),
    bad("no tensors", ValueError, "`checkpoint` to hold tensors", lambda: load_weights(nn.Linear(3, 2), {"epoch": 3})),
    good(
        "a saved state dict",
        lambda: load_weights(
            nn.Linear(3, 2), _saved({"module.weight": torch.ones(2, 3), "module.bias": torch.ones(2)}, "ok.pt")
        ),
        lambda m: _all_ones(m),
    ),
]


def _all_ones(model: nn.Module) -> None:
    assert all(torch.equal(p, torch.ones_like(p)) for p in model.parameters())


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
