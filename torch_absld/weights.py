"""Load a (teacher) checkpoint into a model, tolerating the usual key prefixes."""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["extract_state_dict", "load_weights"]

# Where training scripts commonly nest the weights inside a checkpoint dict, in lookup order.
_NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "student", "teacher", "module")
# Prefixes added by wrappers: DataParallel / DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOWN = 5


def _tensor_entries(obj: Mapping[str, Any]) -> int:
    return sum(isinstance(v, Tensor) for v in obj.values())


def extract_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The weights of ``checkpoint`` (plain or nested under a common key) without ``module.`` / ``_orig_mod.``."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"Expected `checkpoint` to be a mapping (a state dict), but got {type(checkpoint).__name__}.")
    state: Mapping[str, Any] = checkpoint
    for _ in range(4):
        nested = [
            v
            for k in _NESTING_KEYS
            if isinstance(v := state.get(k), Mapping) and v and all(isinstance(n, str) for n in v)
        ]
        if _tensor_entries(state) > 0 or not nested:
            break
        state = nested[0]
    if _tensor_entries(state) == 0:
        raise ValueError(
            "Expected `checkpoint` to hold tensors, directly or under one of the keys "
            f"{', '.join(repr(k) for k in _NESTING_KEYS)}, but found none; its keys are "
            f"{sorted(map(str, checkpoint))[:10]}. Pass the state dict itself."
        )
    return {_strip_wrappers(key): value for key, value in state.items()}


def _strip_wrappers(key: str) -> str:
    key = key.replace("._orig_mod.", ".")
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _drop_common_prefix(state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """Strip one leading segment shared by every key (``model.``, ``teacher.``) when that fits better."""
    if len({key.split(".", 1)[0] for key in state}) != 1 or not all("." in key for key in state):
        return state
    stripped = {key.split(".", 1)[1]: value for key, value in state.items()}
    return stripped if len(expected & stripped.keys()) > len(expected & state.keys()) else state


def _load_file(path: str, map_location: str | torch.device | None, weights_only: bool) -> Any:
    """``torch.load(path)``; a ``ValueError`` for an empty, truncated or foreign file (torch's error otherwise)."""
    if os.path.getsize(path) == 0:
        raise ValueError(f"Expected `source` to be a checkpoint written by torch.save, but {path!r} is empty.")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as error:
        with open(path, "rb") as f:
            head = f.read(2)
        if zipfile.is_zipfile(path) or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
            raise  # a complete zip (torch.save) or a pickle of protocol 2 to 5 (legacy): torch's error says more
        raise ValueError(
            f"Expected `source` to be a checkpoint written by torch.save, but {path!r} could not be read as one "
            f"({type(error).__name__}): it is truncated, corrupt or not a PyTorch file. Check the path and "
            "download it again."
        ) from None


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
    map_location: str | torch.device | None = "cpu",
    weights_only: bool = True,
) -> nn.Module:
    """Load a checkpoint (a path or a loaded dict) into ``model`` and return ``model``.

    Nesting, wrapper prefixes (:func:`extract_state_dict`) and one leading segment shared by
    every key (a Lightning ``model.``) are tolerated; other mismatches raise a ``ValueError``
    listing the missing, unexpected and mis-shaped keys. A checkpoint that matches no key is
    refused whatever ``strict`` says (naming a prefix that would match); ``strict=False`` loads
    a partial match with a warning counting the keys. ``map_location``, ``weights_only``: ``torch.load``'s.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}.")
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"Expected `source` to be a checkpoint file, but {os.fspath(source)!r} does not exist."
            )
    elif not isinstance(source, Mapping):
        raise TypeError(f"Expected `source` to be a path or a state dict, but got {type(source).__name__}.")
    checkpoint = source if isinstance(source, Mapping) else _load_file(os.fspath(source), map_location, weights_only)
    own, name = model.state_dict(), type(model).__name__
    state = _drop_common_prefix(extract_state_dict(checkpoint), set(own))
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if len(missing) == len(own):
        raise ValueError(
            f"Expected the checkpoint's weights to fit `{name}`, but none of its {len(state)} keys is one of the "
            f"model's {len(own)} (e.g. {next(iter(state))!r} vs {next(iter(own), None)!r}). {_prefix_hint(state, own)}"
        )
    mis_shaped = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
        for key in own
        if key in state and isinstance(state[key], Tensor) and state[key].shape != own[key].shape
    ]
    listed = [
        f"  {label} ({len(keys)}): {', '.join(keys[:_SHOWN])}"
        + (f" and {len(keys) - _SHOWN} more" * (len(keys) > _SHOWN))
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped))
        if keys
    ]
    if mis_shaped or (strict and (missing or unexpected)):
        hint = (
            "Check the architecture (depth, width, num_classes) against the one the checkpoint was trained with; "
            "`module.` and `_orig_mod.` prefixes are already removed. Pass strict=False to load the matching keys only."
        )
        raise ValueError(
            "\n".join([f"Expected the checkpoint's weights to fit `{name}`, but they do not.", *listed, hint])
        )
    if listed:
        loaded = f"load_weights loaded {len(own) - len(missing)} of the {len(own)} keys of `{name}`:"
        warnings.warn("\n".join([loaded, *listed]), UserWarning, stacklevel=2)
    model.load_state_dict(state, strict=strict)
    return model


def _prefix_hint(state: Mapping[str, Any], own: Mapping[str, Any]) -> str:
    """Which leading segment, stripped from the checkpoint's keys (or the model's), would make them match."""
    found = []
    for keys, other, side in ((state, own, "checkpoint"), (own, state, "model")):
        for head in sorted({key.split(".", 1)[0] for key in keys if "." in key}):
            count = sum(key.startswith(f"{head}.") and key.split(".", 1)[1] in other for key in keys)
            if count:
                found.append((-count, f"the {side}'s keys under `{head}.` match {count}"))
    if not found:
        return "Check that the checkpoint was saved from this architecture."
    return (
        f"Strip a prefix: {'; '.join(text for _, text in sorted(found))} (a training step's `student.` or `teacher.`; "
        "a DDP or compiled model: load into `model.module` or `model._orig_mod`)."
    )
