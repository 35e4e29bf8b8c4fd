"""Two (or more) gloo ranks in spawned processes, for the tests of what DDP ranks do together.

``run_ranks(target, world_size, tmp_path, *args)`` spawns ``target(rank, *args)`` in each rank
(which returns tensors and plain containers: read back with ``weights_only=True``),
inside a gloo process group, and returns each rank's return value; a rank that hangs (a
collective not entered by every rank) fails the test after ``timeout`` seconds instead of
hanging it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _rank(rank: int, target: Callable, world_size: int, folder: str, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=world_size)  # fmt: skip
    try:
        torch.save(target(rank, *args), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_ranks(target: Callable, world_size: int, folder: Path, *args: Any,
              timeout: float = 120.0) -> list[Any]:  # fmt: skip
    """[target(0, *args), …, target(world_size - 1, *args)], each in its own gloo rank."""
    context = mp.start_processes(_rank, (target, world_size, str(folder), args), world_size,
                                 join=False, start_method="spawn")  # fmt: skip
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"the {world_size} ranks did not finish in {timeout} s (a hang)")
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(world_size)]
