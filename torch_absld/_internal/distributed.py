"""Thin wrappers over ``torch.distributed`` that are no-ops in a single process or in local mode.

``process_group=False`` means *this rank alone*: no collective is called, so a function may be
called on one rank only (e.g. evaluation on rank 0) without the other ranks taking part.
"""

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
    """Sum ``tensor`` across ranks in place (one collective) and return it.

    In a single process, before ``torch.distributed`` is initialised, or with
    ``process_group=False`` it is returned unchanged. Every rank of the group must call it:
    a collective that one rank skips waits until the process group's timeout.
    """
    if process_group is not False and is_distributed(process_group):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=process_group)
    return tensor
