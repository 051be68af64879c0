"""Bad and unusual inputs to `BestCheckpoint` and `stratified_split`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, equal, good, ids, run
from torch import nn

from torch_absld import BestCheckpoint, RobustnessReport, class_accuracy_summary, stratified_split

REPORT = RobustnessReport({"pgd": class_accuracy_summary([1, 2], [2, 2])}, num_classes=2, eps=0.1)
LABELS = [0, 1] * 10


def _update(report: object = REPORT, state: object = None, epoch: object = 1, **kwargs: object) -> BestCheckpoint:
    best = BestCheckpoint(**kwargs)  # type: ignore[arg-type]
    best.update(report, nn.Linear(2, 2) if state is None else state, epoch)  # type: ignore[arg-type]
    return best


CASES: list[Case] = [
    bad("attack=3", TypeError, "`attack` to be a str", lambda: BestCheckpoint(3)),  # type: ignore[arg-type]
    bad("criterion", ValueError, "`criterion` to be one of", lambda: BestCheckpoint(criterion="best")),  # type: ignore[arg-type]
    bad("update a dict report", TypeError, "`report` to be a RobustnessReport", lambda: _update(report={"pgd": 1})),
    bad("update a report without the attack", ValueError, "`report` to hold the attack", lambda: _update(attack="cw")),
    bad("update epoch=1.5", TypeError, "`epoch` to be an int", lambda: _update(epoch=1.5)),
    good("update epoch=np.int64", lambda: _update(epoch=np.int64(3)), lambda b: equal(b.best_epoch, 3)),
    bad(
        "update a list",
        TypeError,
        "`state_dict_or_module` to be an nn.Module or a state dict",
        lambda: _update(state=[1]),
    ),
    bad(
        "load_into before update",
        RuntimeError,
        "No checkpoint kept yet",
        lambda: BestCheckpoint().load_into(nn.Linear(2, 2)),
    ),
    bad("save before update", RuntimeError, "No checkpoint kept yet", lambda: BestCheckpoint().save("x.pt")),
    bad("split fraction 0", ValueError, r"`fraction` in \(0, 1\)", lambda: stratified_split(LABELS, 0.0)),
    bad("split seed=1.5", TypeError, "`seed` to be an int", lambda: stratified_split(LABELS, 0.5, seed=1.5)),  # type: ignore[call-overload]
    bad("split negative label", ValueError, "labels >= 0", lambda: stratified_split([0, -1, 1, 0], 0.5)),
    bad("split float labels", TypeError, "integer labels", lambda: stratified_split([0.5, 1.0], 0.5)),
    good(
        "split int32 tensor labels",
        lambda: stratified_split(torch.tensor(LABELS, dtype=torch.int32), 0.5),
        lambda s: equal(s, stratified_split(LABELS, 0.5)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
