from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _eval_models import report_of
from torch import nn

from torch_absld import BestCheckpoint


def test_best_checkpoint_keeps_a_cpu_copy_of_the_best_overall(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    best = BestCheckpoint("pgd")
    # PGD overall per epoch: 0.3, 0.5, 0.5 (a tie: the earlier epoch stays), 0.4
    overall = {0: ([3, 3], [10, 10]), 1: ([5, 5], [10, 10]), 2: ([6, 4], [10, 10]), 3: ([4, 4], [10, 10])}
    improved = []
    kept = None
    for epoch, counts in overall.items():
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        improved.append(best.update(report_of({"clean": ([9, 9], [10, 10]), "pgd": counts}), model, epoch))
        if epoch == 1:
            kept = model.weight.clone()
    assert improved == [True, True, False, False]
    assert best.best_epoch == 1
    assert best.best_overall == pytest.approx(0.5, abs=1e-15)
    assert best.state_dict is not None
    assert torch.equal(best.state_dict["weight"], kept)
    assert best.state_dict["weight"].device.type == "cpu"
    restored = best.load_into(nn.DataParallel(nn.Linear(3, 2)))
    assert torch.equal(restored.module.weight, kept)
    best.save(str(tmp_path / "best.pt"))
    saved = torch.load(tmp_path / "best.pt", weights_only=False)
    assert saved["epoch"] == 1
    assert torch.equal(saved["state_dict"]["weight"], kept)


def test_best_checkpoint_criteria_and_errors() -> None:
    best = BestCheckpoint("pgd", criterion="worst")
    assert best.update(report_of({"pgd": ([9, 1], [10, 10])}), {"w": torch.ones(1)}, 0)
    assert not best.update(report_of({"pgd": ([3, 1], [10, 10])}), {"w": torch.zeros(1)}, 1)  # same worst
    assert best.best_value == 0.1
    with pytest.raises(ValueError, match="`attack` = 'pgd'"):
        best.update(report_of({"clean": ([1, 1], [2, 2])}), {}, 2)
    with pytest.raises(RuntimeError, match="call `update`"):
        BestCheckpoint().load_into(nn.Linear(1, 1))
    with pytest.raises(ValueError, match="`criterion` to be one of"):
        BestCheckpoint(criterion="best")  # type: ignore[arg-type]
