"""Run a function on several gloo ranks on the CPU, each with its own file store."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, fn: Callable[..., Any], world_size: int, store_path: str, out_dir: str, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        # Free what `fn` built (a DDP reducer sits in reference cycles) while the process group
        # is alive: destroyed at interpreter exit, after the group, it aborts the process.
        del result
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(fn: Callable[..., Any], tmp_path: Path, world_size: int = 2, args: tuple = ()) -> list[Any]:
    """Spawn ``world_size`` processes running ``fn(rank, world_size, *args)``; return their results."""
    store = tmp_path / "store"
    mp.spawn(_entry, args=(fn, world_size, str(store), str(tmp_path), args), nprocs=world_size, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]
