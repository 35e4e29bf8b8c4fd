"""Training data that a resumed run replays exactly: per-draw seeds and a resumable position.

A run killed at step n and resumed from a checkpoint must see the very batches, and the very
augmentations, of the uninterrupted run. Two facts make that hold:

- Every draw's randomness is a function of (seed, epoch, rank, position in the epoch) only, not of
  a process-wide RNG stream: ``datamodules.sampling.SeededSampler`` yields ``(index, draw_seed)``
  pairs and ``datamodules.sampling.SeededDataset`` loads index under
  ``torch.manual_seed(draw_seed)`` in a forked RNG (the readers draw their augmentation through
  ``datamodules.base.sample_rng``, i.e. from torch's RNG). So the number of DataLoader workers,
  their seeds and restarts change nothing.
- ``ResumableLoader`` (here) implements Lightning's ``state_dict`` / ``load_state_dict`` loader
  protocol: the checkpoint stores (epoch, batches done in it); the resumed loader's sampler skips
  those batches of that epoch, without loading them.

``experiments.resume.FreshResumedEpoch`` (a Trainer callback) re-creates an iterator that
Lightning made before it set the resumed epoch (with DataLoader workers it has already drawn from
the wrong epoch). This module imports nothing from the rest of the data layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning saves and restores (its stateful-loader protocol), over a sampler
    with ``epoch`` and ``resume_at(epoch, batches)`` (``datamodules.sampling.SeededSampler``).
    ``batches_done()`` says how many batches of the current epoch were trained on."""

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not callable(getattr(self.sampler, "resume_at", None)):
            raise TypeError(
                f"ResumableLoader needs a sampler with resume_at (a SeededSampler), "
                f"got {type(self.sampler)}"
            )
        self.batches_done = batches_done
        self.iter_epoch: int | None = None  # the sampler epoch of the latest iterator

    def __iter__(self) -> Iterator[Any]:
        self.iter_epoch = int(self.sampler.epoch)
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self.batches_done())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_at(int(state["epoch"]), int(state["batches"]))
