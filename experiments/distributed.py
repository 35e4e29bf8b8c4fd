"""Distributed runs end cleanly: each rank destroys its process group before the interpreter exits."""

from __future__ import annotations

import atexit
import functools

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback


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
