"""What a training run does when it is stopped: atomic checkpoints and signals that save.

- ``AtomicCheckpointIO``: every checkpoint is written to a hidden ``.<name>.<pid>.partial`` file
  beside its target, flushed, then renamed over it (``os.replace``: a reader sees the old file or
  the new one, never half of one). Nothing goes through TMPDIR; a write killed half-way leaves a
  ``.partial`` file in the run folder, which ``remove_partial_writes`` deletes at the next start.
  A write that fails (disk full) raises ``SaveFailed`` naming the folder; the target is intact.
- ``SaveOnSignal``: during ``trainer.fit`` SIGTERM (cluster pre-emption, ``scancel``) and SIGINT
  (Ctrl+C) stop training after the current step; the checkpoint of that step is written to the
  stage's ``last.ckpt`` and ``fit`` raises ``Interrupted``; the entry point then exits with
  ``EXIT_CODES[signal]``: 143 for SIGTERM (128 + 15, the status a job killed by SIGTERM reports;
  list it in slurm.conf ``RequeueExit`` or requeue on it in the batch script), 130 for SIGINT.
  A signal during validation lets the validation finish first (the epoch's checkpoint, learning
  rate step and best-so-far are written as in an uninterrupted run) and stops when it ends, at
  the step it validated. A second Ctrl+C aborts at once (``abort_now``: exit 130, nothing
  saved, the checkpoints on disk kept). A rerun with ``resume=auto`` continues from the saved step.
  Under DDP all ranks stop at the same step, whichever of them got the signal (all of them, as
  under SLURM, or rank 0 alone): the handler only records it, and the ranks agree at the end of
  every ``log_every_n_steps``-th step and of every validation (one gloo all-reduce; at every step
  it made each step wait for the slowest rank) — Lightning's own SIGTERM handler, which broadcasts
  from inside the handler and forwards the signal to the other ranks, left the ranks in
  unmatched collectives (a hang) and is replaced once the training starts.
  Outside ``fit`` (building datasets, testing) there is no step to save and the signals keep their
  default action (the process ends at once; SIGTERM: status 143 in a shell, -15 for a parent).
- A non-finite loss (``deephar.tasks.finite``) stops training at the next log step or the
  epoch's last step (or before the next validation / checkpoint) with one line naming the step,
  the non-finite loss terms and the last finite checkpoint; the entry point exits with ``EXIT_NONFINITE`` (4). No checkpoint is
  written with non-finite weights or optimiser state. Under DDP every rank stops at that step.
  Exit codes of ``experiments.train``: 0 done, 1 a checkpoint could not be written
  (``SaveFailed``), 2 refused at start-up (config, checkpoint), 3 unreadable evaluation samples,
  4 non-finite loss or state, 130 SIGINT, 143 SIGTERM.
- ``RNGState`` puts the process RNG states into every checkpoint. With the resumable training
  loader (``datamodules.resume``) and the task modules' own plateau step (``deephar.tasks.base``)
  a resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from deephar import lightning_internals

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
EXIT_NONFINITE = 4  # a non-finite loss or state stopped training (deephar.tasks.finite)
PARTIAL = ".partial"


class Interrupted(Exception):
    """Training stopped by a signal; ``checkpoint`` holds the step it stopped at ("" if none)."""

    def __init__(self, signum: int, checkpoint: str = "", step: int = 0) -> None:
        name = signal.Signals(signum).name
        where = f"step {step} saved to {checkpoint}" if checkpoint else "nothing to save"
        super().__init__(f"stopped by {name}: {where}; rerun with resume=auto to continue")
        self.signum, self.checkpoint, self.step = signum, checkpoint, step

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(signal.Signals(self.signum), 128 + self.signum)


class SaveFailed(RuntimeError):
    """A checkpoint could not be written (disk full, folder gone …); the one before is intact."""

    def __init__(self, path: Path, err: OSError) -> None:
        kept = " (the last good one there is kept)" if path.is_file() else ""
        super().__init__(
            f"cannot write {path.name} in {path.parent}: {err.strerror or err}"
            f"{kept}; free space there, then rerun with resume=auto"
        )
        self.path, self.errno = path, err.errno


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.<name>.<pid>.partial`` in the target's folder, fsync, ``os.replace``;
    an ``OSError`` on the way (ENOSPC) becomes ``SaveFailed`` naming the folder, the target
    untouched."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except OSError as err:
            raise SaveFailed(path, err) from None
        finally:
            partial.unlink(missing_ok=True)


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the ``.*.partial`` files an interrupted write left in ``folder``; returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{PARTIAL}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def abort_now(signum: int) -> None:
    """A second Ctrl+C: end the process at once, saving nothing (a KeyboardInterrupt went
    through Lightning's graceful shutdown, which finished the first one's save). A checkpoint
    write cut short leaves only a ``.partial`` file, removed at the next start."""
    os.write(2, b"aborted by a second Ctrl+C: nothing saved (the checkpoints on disk are kept)\n")
    os._exit(EXIT_CODES[signal.Signals(signum)])


class SaveOnSignal(Callback):
    """SIGTERM / SIGINT during fit → stop after the current step, save ``path``, raise
    ``Interrupted`` out of ``fit`` (see the module doc). Use ``with callback.handling(): fit``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.received: int | None = None
        self.trainer: pl.Trainer | None = None
        self.saved_step: int | None = None
        self.ranks: Any = None  # the process group the ranks agree in (None: one process)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            abort_now(signum)
        if self.trainer is None:  # before the Trainer's set-up or after its teardown: no step
            raise SystemExit(EXIT_CODES[signal.Signals(signum)])
        self.received = signum  # acted upon where all ranks agree (``_agree_and_stop``)

    def _take_over(self) -> None:
        """Ours alone: Lightning registers its SIGTERM handler inside ``fit`` (restored after)."""
        for signum in EXIT_CODES:
            signal.signal(signum, self._handle)

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_over()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_over()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Testing has no step to save: SIGTERM ends the process at once, as outside ``fit``.
        Lightning's handler, registered inside ``test``, ended it with status 0 as if the test
        had succeeded (and, under DDP, left the other ranks in a collective)."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _agree_and_stop(self, trainer: pl.Trainer) -> None:
        """Every rank asks, at the same point, whether any rank got a signal; if so all stop:
        Lightning's stop flag ends the loops at this step boundary (SIGTERMException)."""
        signum = self.received or 0
        if self.ranks is not None:
            agreed = torch.tensor([signum])
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX, group=self.ranks)
            signum = int(agreed.item())
        if signum:
            self.received = signum
            lightning_internals.request_stop(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        """One process: at every step. DDP: every ``log_every_n_steps`` steps (the same steps on
        every rank), so that the ranks do not wait for each other at every step."""
        every = max(1, trainer.log_every_n_steps)
        if self.ranks is None or trainer.global_step % every == 0:
            self._agree_and_stop(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A signal received during validation stops training when it ends: a checkpoint saved
        inside the validation would resume past it (its plateau step and best-so-far lost)."""
        self._agree_and_stop(trainer)

    @contextlib.contextmanager
    def handling(self) -> Iterator[SaveOnSignal]:
        """Install the handlers (restored afterwards); turn the stop into ``Interrupted``."""
        previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES}
        try:
            yield self
        except SIGTERMException:
            if self.received is None:
                raise
            saved = str(self.path) if self.saved_step is not None else ""
            raise Interrupted(self.received, saved, self.saved_step or 0) from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.trainer = trainer
            if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
                # the agreement goes through the CPU (gloo): no GPU synchronisation per step
                gloo = dist.get_backend() == "gloo"
                self.ranks = dist.group.WORLD if gloo else dist.new_group(backend="gloo")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.trainer, self.ranks = None, None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.received is not None and isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)  # the full training state (not weights only)
            self.saved_step = trainer.global_step


class RNGState(Callback):
    """The process RNGs (torch, NumPy, Python) saved in every checkpoint and restored on resume,
    as plain tensors and lists (loadable with weights_only=True)."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, list(internal), gauss_next],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
