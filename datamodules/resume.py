"""Training data that a resumed run replays exactly: per-draw seeds and a resumable position.

A run killed at step n and resumed from a checkpoint must see the very batches, and the very
augmentations, of the uninterrupted run. Two facts make that hold:

- Every draw's randomness is a function of (seed, epoch, rank, position in the epoch) only, not of
  a process-wide RNG stream: ``SeededSampler`` yields ``(index, draw_seed)`` pairs and
  ``SeededDataset`` loads index under ``torch.manual_seed(draw_seed)`` in a forked RNG (the readers
  draw their augmentation through ``datamodules.base.sample_rng``, i.e. from torch's RNG). So the
  number of DataLoader workers, their seeds and restarts change nothing.
- ``ResumableLoader`` implements Lightning's ``state_dict`` / ``load_state_dict`` loader protocol:
  the checkpoint stores (epoch, batches done in it); the resumed loader's sampler skips those
  batches of that epoch, without loading them.
- ``FreshResumedEpoch`` (a Trainer callback) re-creates an iterator that Lightning made before it
  set the resumed epoch (with DataLoader workers it has already drawn from the wrong epoch).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch.utils.data import ConcatDataset, DataLoader

from datamodules.mixed import MixedRatioSampler


class SeededSampler(MixedRatioSampler):
    """``MixedRatioSampler`` whose draws carry their own seed: yields (index, draw_seed).

    ``resume_at(epoch, batches)``: the next iteration over ``epoch`` starts after ``batches``
    blocks (a later epoch starts at its beginning; the request is used once).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches: int) -> None:
        self._resume = (epoch, batches)  # the epoch itself is set by the Trainer (set_epoch)

    def draw_seeds(self) -> np.ndarray:
        """(steps·Σ counts,) seeds of this epoch's draws, in draw order."""
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 2])
        return rng.integers(0, 2**62, size=len(self))

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1] * sum(self.counts)
        self._resume = None
        return itertools.islice(zip(super().__iter__(), self.draw_seeds().tolist()), skip, None)


class SeededDataset(ConcatDataset):
    """``ConcatDataset`` indexed by (index, draw_seed): the sample is loaded with torch's RNG
    seeded by draw_seed (forked: the caller's RNG state is left as it was)."""

    def __getitem__(self, item: Any) -> Any:
        if not isinstance(item, tuple):
            return super().__getitem__(item)
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return super().__getitem__(index)


class ResumableLoader(DataLoader):
    """A DataLoader over a ``SeededSampler`` that Lightning saves and restores (its stateful-loader
    protocol). ``batches_done()`` says how many batches of the current epoch were trained on."""

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, SeededSampler):
            raise TypeError(f"ResumableLoader needs a SeededSampler, got {type(self.sampler)}")
        self.batches_done = batches_done
        self.iter_epoch: int | None = None  # the sampler epoch of the latest iterator

    def __iter__(self) -> Iterator[Any]:
        self.iter_epoch = int(self.sampler.epoch)
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self.batches_done())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_at(int(state["epoch"]), int(state["batches"]))


class FreshResumedEpoch(Callback):
    """The first epoch of a resumed run iterates its own epoch's draws, from the restored position.

    Lightning may make the training iterator before it restores the checkpoint (the stepping-batch
    estimate of the schedules builds the loader early) and before it sets the sampler's epoch,
    and a restored run reuses that iterator: it then neither skips the batches already trained
    on nor (with DataLoader workers, which draw indices at once) draws from the right epoch. So
    at the start the loader's restored state is applied here and, unless Lightning
    makes a new iterator itself, the iterator is made again (nothing of it was consumed yet).
    (A run restored mid-epoch calls no ``on_train_epoch_start``: ``on_train_start`` does it.)
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Restored run: the loader's saved position, for the epoch the Trainer continues."""
        loader, fit = trainer.train_dataloader, trainer.fit_loop
        pending = fit._combined_loader_states_to_load  # restored, not yet given to the loader
        if isinstance(loader, ResumableLoader) and pending:
            loader.load_state_dict(pending[0])
            fit._combined_loader_states_to_load = []
            loader.sampler.set_epoch(fit.epoch_progress.current.processed)  # as the Trainer will
            iter(fit._data_fetcher)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """An iterator made for another epoch than the one starting is made again (unless
        Lightning makes one itself: TrainingEpochLoop.on_run_start's rule)."""
        loader, fit = trainer.train_dataloader, trainer.fit_loop
        remade = trainer.current_epoch > 0 and not fit.is_resuming and not fit.epoch_loop.restarting
        stale = isinstance(loader, ResumableLoader) and loader.iter_epoch != loader.sampler.epoch
        if stale and not remade:
            iter(fit._data_fetcher)
