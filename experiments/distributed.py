"""Distributed runs: the strategy a multi-device run gets, and a clean end (each rank destroys its
process group before the interpreter exits)."""

from __future__ import annotations

import atexit
import functools
import os
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import DDPStrategy, Strategy


def is_rank_zero() -> bool:
    """Whether this process is global rank 0, read from its launcher before the process group
    exists: ``RANK`` (torchrun), else ``NODE_RANK`` and ``LOCAL_RANK`` (Lightning's own launcher
    starts ranks 1… with them), else ``SLURM_PROCID`` (srun); a lone process is rank 0."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    if "LOCAL_RANK" in env:
        return int(env.get("NODE_RANK", 0)) == 0 and int(env["LOCAL_RANK"]) == 0
    return int(env.get("SLURM_PROCID", 0)) == 0


def device_count(accelerator: str, devices: Any) -> int:
    """The number of devices per node ``pl.Trainer(accelerator, devices)`` uses: an int, a list
    or "0,1" of indices, "3"; "auto" / -1: every CUDA device (accelerator auto | gpu | cuda on a
    CUDA machine), else one."""
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        devices = text if text == "auto" else int(text)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices == "auto" or devices == -1:
        cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.cuda.device_count() if cuda else 1
    return int(devices)


def resolve_strategy(
    strategy: str, accelerator: str, devices: Any, num_nodes: int, unused_parameters: bool
) -> str | Strategy:
    """``trainer.strategy`` as the Trainer gets it: "auto" or "ddp" over more than one device
    or node becomes ``DDPStrategy(find_unused_parameters=unused_parameters)`` (Lightning's
    "auto" picks DDP there without it, and a run with parameters that get no gradient fails
    at step 2: "Expected to have finished reduction"); anything else is passed as it is."""
    several = num_nodes > 1 or device_count(accelerator, devices) > 1
    if strategy in ("auto", "ddp") and several:
        return DDPStrategy(find_unused_parameters=unused_parameters)
    return strategy


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@functools.cache
def destroy_process_group_at_exit() -> None:
    """Registers (once per process) the destruction of the default process group at exit."""
    atexit.register(_destroy_process_group)


class ReleaseProcessGroup(Callback):
    """Destroys the process group when the rank's process exits, whatever the backend.

    Lightning does it for NCCL only. A gloo group (DDP on CPUs) left to the interpreter's
    finalisation can abort a rank after training has finished ("terminate called without an
    active exception", SIGABRT): its worker threads still hold work objects while Python tears
    down (pytorch/pytorch#190489, #179291). At exit rather than at ``teardown``: a ``test`` run
    after ``fit`` in the same process uses the group again.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if dist.is_available() and dist.is_initialized():
            destroy_process_group_at_exit()
