"""The training and evaluation samplers of ``MixedRatioDataModule`` (``datamodules.mixed``).

Counts: ``shares`` (any positive weights, or the counts themselves) are turned into integers ONCE
by the largest-remainder method so that they sum to ``batch_size``: each source gets
floor(share·B / Σ shares) and the leftover samples go to the largest fractional parts (ties: the
earlier source). E.g. shares 45/45/10 at B = 24: quotas 10.8/10.8/2.4 → floors 10/10/2 (22), the two
leftovers go to the 0.8 remainders → 11/11/2. A source whose count comes out 0 is an error.

Cycling (``MixedRatioSampler``): indices into the ``ConcatDataset`` of the sources, every block of
``batch_size`` consecutive indices holding ``counts[s]`` samples of source s (in source order).
Each source has its own queue. Per epoch e the source's indices are permuted with a seed
(seed, e, source) shared by all ranks and dealt out rank::world_size, so under DDP the ranks draw
disjoint samples from every source and every rank's batch holds the same counts. A rank walks its
share in random passes, re-shuffled each time it is exhausted, independently of the other sources.
Epoch length: ``steps_per_epoch`` batches, or the official max over sources of
ceil(N_s / world_size / counts[s]) (``default_steps``). Lightning calls ``set_epoch`` on the
sampler (a ``DistributedSampler``, which Lightning therefore leaves in place) at every epoch.

Exact resume: ``SeededSampler`` yields (index, draw seed) pairs and can start mid-epoch;
``SeededDataset`` loads each index under its draw seed (why: ``datamodules.resume``).
Evaluation: ``EvalShard`` gives each rank every world_size-th sample, unpadded.

This module imports nothing from the rest of the data layer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DistributedSampler


def split_counts(shares: Mapping[str, float], batch_size: int) -> dict[str, int]:
    """Largest-remainder split of ``batch_size`` in proportion to ``shares`` (see module doc)."""
    if not shares or any(v <= 0 for v in shares.values()):
        raise ValueError(f"mixed batch shares must be positive, got {dict(shares)}")
    weights = {k: Fraction(v).limit_denominator(10**9) for k, v in shares.items()}
    quotas = {k: w * batch_size / sum(weights.values()) for k, w in weights.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    order = sorted(quotas, key=lambda k: quotas[k] - counts[k], reverse=True)  # stable on ties
    for k in order[: batch_size - sum(counts.values())]:
        counts[k] += 1
    if empty := [k for k, c in counts.items() if c == 0]:
        raise ValueError(
            f"sources {empty} get 0 of {batch_size} samples per batch with shares "
            f"{dict(shares)}: raise their share or the batch size"
        )
    return counts


def default_steps(sizes: Sequence[int], counts: Sequence[int], world_size: int = 1) -> int:
    """Official epoch length: max over sources of ceil(samples per rank / count per batch)."""
    return max(math.ceil(math.ceil(n / world_size) / c) for n, c in zip(sizes, counts))


class MixedRatioSampler(DistributedSampler):
    """Indices into ``ConcatDataset(sources)``: ``steps`` blocks of Σ counts, each block holding
    counts[s] indices of source s (source order). See the module doc for cycling and DDP."""

    def __init__(
        self,
        sizes: Sequence[int],
        counts: Sequence[int],
        steps: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__(range(sum(sizes)), num_replicas=world_size, rank=rank, seed=seed)
        if too_small := [n for n in sizes if n < world_size]:
            raise ValueError(f"sources of sizes {too_small} cannot feed {world_size} ranks")
        self.sizes, self.counts, self.steps = list(sizes), list(counts), steps
        self.offsets = np.cumsum([0, *sizes[:-1]])

    def __len__(self) -> int:
        return self.steps * sum(self.counts)

    def shard(self, source: int) -> np.ndarray:
        """This rank's indices of ``source`` (local to the source) for the current epoch."""
        perm = np.random.default_rng([self.seed, self.epoch, source]).permutation(
            self.sizes[source]
        )
        return perm[self.rank :: self.num_replicas]

    def stream(self, source: int) -> np.ndarray:
        """(steps·counts[s],) local indices in draw order: reshuffled passes over ``shard``."""
        shard = self.shard(source)
        need = self.steps * self.counts[source]
        rng = np.random.default_rng([self.seed, self.epoch, source, self.rank, 1])
        passes = rng.random((math.ceil(need / len(shard)), len(shard))).argsort(axis=1)
        return shard[passes].ravel()[:need]

    def __iter__(self) -> Iterator[int]:
        blocks = [
            (self.stream(s) + self.offsets[s]).reshape(self.steps, c)  # (steps, counts[s])
            for s, c in enumerate(self.counts)
        ]
        return iter(np.concatenate(blocks, axis=1).ravel().tolist())


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


class EvalShard(DistributedSampler):
    """Evaluation indices of one rank: ``rank, rank + world_size, …`` in order, unpadded — over
    the ranks every sample comes exactly once. A ``DistributedSampler``, so Lightning keeps it."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        super().__init__(range(size), num_replicas=world_size, rank=rank, shuffle=False)
        self.indices = range(rank, size, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
