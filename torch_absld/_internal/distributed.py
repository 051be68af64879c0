"""``torch.distributed`` wrappers that do nothing in one process or with ``process_group=False`` (this rank alone)."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor

from .checks import ProcessGroupArg

__all__ = ["all_reduce_sum", "is_distributed"]


def is_distributed(process_group: ProcessGroupArg = None) -> bool:
    """Whether a collective over ``process_group`` involves more than one rank (never for ``False``)."""
    if process_group is False or not (dist.is_available() and dist.is_initialized()):
        return False
    return dist.get_world_size(process_group) > 1


def all_reduce_sum(tensor: Tensor, process_group: ProcessGroupArg = None) -> Tensor:
    """Sum ``tensor`` across the group's ranks in place (every rank must call it) and return it."""
    if process_group is not False and is_distributed(process_group):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=process_group)
    return tensor
