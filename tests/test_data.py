from __future__ import annotations

import pytest
import torch
from _eval_models import blobs
from torch.utils.data import TensorDataset

from torch_absld import stratified_split


def test_stratified_split_per_class_counts() -> None:
    labels = [0] * 10 + [1] * 20 + [2] * 3 + [3] * 1
    rest, held_out = stratified_split(labels, 0.2, seed=0)
    assert sorted(rest + held_out) == list(range(len(labels)))
    assert not set(rest) & set(held_out)
    assert held_out == sorted(held_out)
    # round(0.2 * n): 2, 4, round(0.6) = 1; the single-sample class stays in `rest`.
    assert [sum(labels[i] == c for i in held_out) for c in range(4)] == [2, 4, 1, 0]
    assert stratified_split(torch.tensor(labels), 0.2, seed=0) == (rest, held_out)
    assert stratified_split(labels, 0.2, seed=1) != (rest, held_out)


def test_stratified_split_of_datasets() -> None:
    x, y = blobs(30, 3)
    train, val = stratified_split(TensorDataset(x, y), 0.3, seed=0)
    assert len(val) == 9
    assert len(train) == 21
    assert sorted(int(val[i][1]) for i in range(len(val))) == [0] * 3 + [1] * 3 + [2] * 3

    class WithTargets(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
        targets = [0, 1] * 5

        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            raise AssertionError("labels must come from `targets`")

    _, held = stratified_split(WithTargets(), 0.2)
    assert len(held) == 2
    with pytest.raises(ValueError, match=r"`fraction` in \(0, 1\)"):
        stratified_split([0, 1], 1.0)
