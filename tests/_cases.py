"""Table-driven argument cases: a call, and what it must do (raise a clear error, or return a right value).

Each ``tests/test_<module>_errors.py`` holds a ``CASES`` list and runs it with :func:`run`;
:func:`outcome` classifies one case against the installed package (used to count, for a
version of the package, how many cases give a clear error, a confusing one, a silent wrong
answer, or reject a valid input).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Case:
    """One call and its expected outcome: ``error`` with ``match``, or a value that ``check`` accepts."""

    id: str
    call: Callable[[], Any]
    error: type[BaseException] | None = None
    match: str | None = None
    check: Callable[[Any], None] | None = None


def bad(id: str, error: type[BaseException], match: str, call: Callable[[], Any]) -> Case:
    """A call that must raise ``error`` with a message matching ``match``."""
    return Case(id, call, error=error, match=match)


def good(id: str, call: Callable[[], Any], check: Callable[[Any], None] | None = None) -> Case:
    """A valid call that must succeed; ``check`` asserts on its result."""
    return Case(id, call, check=check)


def odd_outputs(
    what: str, call: Callable[[str], Any], match: str, kinds: tuple[str, ...] = ("tuple", "dict", "1d")
) -> list[Case]:
    """``bad`` cases, a ``ValueError`` matching ``match``, for ``call(kind)`` with a model whose output is of ``kind``.

    The kinds are those of ``_models.OddOutput``: a tuple, a dict, 1-D logits.
    """
    names = {"tuple": "a tuple", "dict": "a dict", "1d": "1-D"}
    return [bad(f"{what} returns {names[kind]}", ValueError, match, lambda kind=kind: call(kind)) for kind in kinds]


def equal(a: object, b: object) -> None:
    """A ``check``: ``a == b``."""
    assert a == b


def identical(a: Any, b: Any) -> None:
    """A ``check``: tensors equal in shape, dtype and every value (``torch.equal``)."""
    import torch

    assert torch.equal(a, b)


def run(case: Case) -> None:
    """Run ``case`` as a test."""
    if case.error is not None:
        with pytest.raises(case.error, match=case.match):
            case.call()
        return
    result = case.call()
    if case.check is not None:
        case.check(result)


def outcome(case: Case) -> str:
    """``"clear"``, ``"correct"``, ``"confusing"``, ``"silent"`` or ``"rejected"`` (a valid input that raised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = case.call()
        except Exception as error:
            if case.error is None:
                return "rejected"
            right = isinstance(error, case.error) and re.search(case.match or "", str(error)) is not None
            return "clear" if right else "confusing"
    if case.error is not None:
        return "silent"
    if case.check is not None:
        try:
            case.check(result)
        except AssertionError:
            return "silent"
        except Exception:
            return "silent"
    return "correct"


def ids(cases: list[Case]) -> list[str]:
    """The ids of ``cases`` (for ``pytest.mark.parametrize``); they must be unique."""
    names = [case.id for case in cases]
    assert len(names) == len(set(names)), "case ids must be unique"
    return names


def state_of(module: Any) -> dict[str, Any]:
    """Everything a load may change: the state dict (cloned) and the module's plain attributes."""
    import copy

    import torch

    tensors = {
        key: value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
        for key, value in module.state_dict().items()
    }
    plain = {
        f"{name}.{key}": copy.deepcopy(value)
        for name, sub in module.named_modules()
        for key, value in vars(sub).items()
        if not key.startswith("_") and isinstance(value, (int, float, str, bool, type(None)))
    }
    return {**tensors, **plain}


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two :func:`state_of` snapshots are equal (NaN equal to NaN)."""
    import torch

    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, torch.Tensor):
            if not torch.equal(
                value.isnan() if value.is_floating_point() else value,
                other.isnan() if other.is_floating_point() else other,
            ):
                return False
            if value.is_floating_point() and not torch.equal(value.nan_to_num(), other.nan_to_num()):
                return False
        elif value != other and not (value != value and other != other):
            return False
    return True


def rejected_load(module: Any, state: Any, **kwargs: Any) -> Any:
    """Load ``state``; if it raises, re-raise only when ``module`` was left exactly as it was.

    A load that raises but changed the module returns ``"changed"`` (a silent wrong state).
    """
    before = state_of(module)
    try:
        return module.load_state_dict(state, **kwargs)
    except Exception:
        if same_state(before, state_of(module)):
            raise
        return "changed"
