"""Distributed runs: the strategy a multi-device run gets, the global batch it trains with (printed
once), and a clean end (each rank destroys its process group before the interpreter exits)."""

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

from deephar.tasks.schedule import lr_scale


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
    """``trainer.strategy`` as the Trainer gets it: "ddp", and "auto" over more than one device
    or node, become ``DDPStrategy(find_unused_parameters=unused_parameters)`` (Lightning's
    "auto" picks DDP there without it, and a run with parameters that get no gradient fails
    at step 2: "Expected to have finished reduction"); anything else is passed as it is."""
    several = num_nodes > 1 or device_count(accelerator, devices) > 1
    if strategy == "ddp" or (strategy == "auto" and several):
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


def global_batch_line(
    world_size: int,
    batch_size: int,
    accumulate: int = 1,
    lr: float | None = None,
    scale_lr: str = "none",
) -> str:
    """ "global batch 8 devices × 24 = 192; lr 1e-03 × 8 (optim.scale_lr=linear) = 8e-03"."""
    line = f"global batch {world_size} devices × {batch_size}"
    total = world_size * batch_size
    if accumulate > 1:
        line, total = f"{line} × {accumulate} accumulated", total * accumulate
    line = f"{line} = {total}"
    if lr is not None:
        factor = lr_scale(scale_lr, world_size)
        line += f"; lr {lr:.3g} × {factor:.3g} (optim.scale_lr={scale_lr}) = {lr * factor:.3g}"
    return line


class GlobalBatch(Callback):
    """Prints once, on rank 0 when ``fit`` starts, the global batch (``data.batch_size`` is per
    device) and the learning rate it runs at (``optim.scale_lr``)."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        optim = getattr(pl_module, "optim", None)
        lr, rule = (optim.lr, optim.scale_lr) if optim is not None else (None, "none")
        print(
            global_batch_line(
                trainer.world_size, self.batch_size, trainer.accumulate_grad_batches, lr, rule
            ),
            flush=True,
        )
