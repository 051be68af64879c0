"""Thin wrappers over ``torch.distributed`` that are no-ops in a single process."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum", "is_distributed"]


def is_distributed(process_group: dist.ProcessGroup | None = None) -> bool:
    """Whether a collective over ``process_group`` involves more than one rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    return dist.get_world_size(process_group) > 1


def all_reduce_sum(tensor: Tensor, process_group: dist.ProcessGroup | None = None) -> Tensor:
    """Sum ``tensor`` across ranks in place (one collective) and return it.

    In a single process, or before ``torch.distributed`` is initialised, it is returned unchanged.
    """
    if is_distributed(process_group):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=process_group)
    return tensor
