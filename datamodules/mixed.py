"""MixedRatioDataModule: every training batch holds a fixed number of samples from each source.

This is the official ``BatchLoader`` (MPII + Human3.6M for 3D pose; pose images + action clips for
the multitask model) on PyTorch facilities: one ``DataLoader`` over the ``ConcatDataset`` of the
sources, whose sampler lays the indices out so that every block of ``batch_size`` consecutive
indices holds ``counts[s]`` samples of source s (in source order), and a collate that builds the
batch described below.

Counts: ``shares`` (any positive weights, or the counts themselves) are turned into integers ONCE
by the largest-remainder method so that they sum to ``batch_size``: each source gets
floor(share·B / Σ shares) and the leftover samples go to the largest fractional parts (ties: the
earlier source). E.g. shares 45/45/10 at B = 24: quotas 10.8/10.8/2.4 → floors 10/10/2 (22), the two
leftovers go to the 0.8 remainders → 11/11/2. A source whose count comes out 0 is an error.

Cycling: each source has its own queue. Per epoch e the source's indices are permuted with a seed
(seed, e, source) shared by all ranks and dealt out rank::world_size, so under DDP the ranks draw
disjoint samples from every source and every rank's batch holds the same counts. A rank walks its
share in random passes, re-shuffled each time it is exhausted, independently of the other sources.
Epoch length: ``steps_per_epoch`` batches, or the official max over sources of
ceil(N_s / world_size / counts[s]) when it is None. Lightning calls ``set_epoch`` on the sampler (a
``DistributedSampler``, which Lightning therefore leaves in place) at every epoch. The training
loader uses ``SeededSampler`` (each draw with its own seed, resumable mid-epoch) over a
``SeededDataset``, in a ``datamodules.resume.ResumableLoader`` (why: ``datamodules.resume``).

Batch structure (training):
- ``groups=None``: one batch dict, ``default_collate`` of all samples (same keys required), the
  first counts[s0] entries from the first source, and so on (``counts`` gives the layout).
- ``groups={"pose": ["mpii", "h36m"], "action": ["penn"]}``: ``{"pose": batch, "action": batch}``,
  each the concatenation of its sources — still images and clips cannot share one batch, so a
  JointModule receives both kinds in the same step.
Validation / test: one DataLoader per named dataset (``val_names`` / ``test_names`` give the
order of ``dataloader_idx``). Under DDP each rank takes every world_size-th sample (``EvalShard``),
so every sample is scored exactly once — Lightning's DistributedSampler would pad the ranks to equal
lengths by scoring up to world_size - 1 samples twice. The metrics (torchmetrics) gather their
states across the ranks when computed. Their collate (``datamodules.missing.collate_readable``)
lists unreadable samples under ``batch["unreadable"]`` instead of replacing them;
``gather_missing`` sums those reports over the ranks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, default_collate

from datamodules.missing import MissingLog, collate_readable
from datamodules.resume import ResumableLoader
from deephar import lightning_internals


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


class MixedCollate:
    """Collate a mixed batch laid out as ``counts`` (source order) into one batch or per group."""

    def __init__(
        self,
        counts: Mapping[str, int],
        groups: Mapping[str, Sequence[str]] | None = None,
        collate_fn: Callable = default_collate,
    ):
        self.counts, self.collate_fn = dict(counts), collate_fn
        self.groups = {k: list(v) for k, v in groups.items()} if groups else None
        if self.groups is not None:
            listed = [s for names in self.groups.values() for s in names]
            if sorted(listed) != sorted(self.counts):
                raise ValueError(
                    f"groups {self.groups} must list every source of "
                    f"{sorted(self.counts)} exactly once"
                )

    def _concat(self, parts: dict[str, list], names: Sequence[str]):
        samples = [x for s in names for x in parts[s]]
        keys = {s: set(parts[s][0]) for s in names}
        if len({frozenset(k) for k in keys.values()}) > 1:
            raise ValueError(
                f"sources {list(names)} yield different keys and cannot share a batch "
                f"({ {s: sorted(k) for s, k in keys.items()} }); put them in "
                "separate `groups`"
            )
        return self.collate_fn(samples)

    def __call__(self, samples: list[dict]):
        bounds = np.cumsum([0, *self.counts.values()])
        parts = {s: samples[a:b] for s, a, b in zip(self.counts, bounds[:-1], bounds[1:])}
        if self.groups is None:
            return self._concat(parts, list(self.counts))
        return {g: self._concat(parts, names) for g, names in self.groups.items()}


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


class MixedRatioDataModule(pl.LightningDataModule):
    """Training on fixed per-source counts per batch; validation / test per dataset.

    train: {source: Dataset}; shares: {source: weight or count}; batch_size: per rank;
    steps_per_epoch: None → official length; groups: see module doc; rank / world_size: override
    what the attached Trainer (or torch.distributed) says — for tests without a Trainer.
    """

    def __init__(
        self,
        train: Mapping[str, Dataset],
        shares: Mapping[str, float],
        batch_size: int,
        steps_per_epoch: int | None = None,
        val: Mapping[str, Dataset] | None = None,
        test: Mapping[str, Dataset] | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_batch_size: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ):
        super().__init__()
        if set(train) != set(shares):
            raise ValueError(f"train sources {sorted(train)} and shares {sorted(shares)} differ")
        self.train_sets = dict(train)
        self.counts = split_counts({k: shares[k] for k in train}, batch_size)
        self.batch_size, self.steps_per_epoch, self.seed = batch_size, steps_per_epoch, seed
        self.val_sets, self.test_sets = dict(val or {}), dict(test or {})
        self.collate = MixedCollate(self.counts, groups)
        self.eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(
                f"batch_size = {batch_size}, eval_batch_size = {eval_batch_size}: both must be >= 1"
            )
        self._rank, self._world_size = rank, world_size
        self.missing: dict[str, MissingLog] = {}  # "<stage>/<source>": unreadable samples
        self.loader_kwargs = dict(
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
        )

    @property
    def val_names(self) -> list[str]:
        return list(self.val_sets)

    @property
    def test_names(self) -> list[str]:
        return list(self.test_sets)

    def distributed(self) -> tuple[int, int]:
        """(rank, world_size): explicit arguments, else the Trainer, else torch.distributed."""
        if self._rank is not None or self._world_size is not None:
            return self._rank or 0, self._world_size or 1
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def train_sampler(self) -> SeededSampler:
        """A ``SeededSampler``: (index, draw seed) pairs, resumable."""
        rank, world_size = self.distributed()
        sizes = [len(d) for d in self.train_sets.values()]
        counts = list(self.counts.values())
        steps = self.steps_per_epoch or default_steps(sizes, counts, world_size)
        return SeededSampler(sizes, counts, steps, self.seed, rank, world_size)

    def batches_done(self) -> int:
        """Batches trained on in the current epoch (0 between epochs, or without a Trainer)."""
        return 0 if self.trainer is None else lightning_internals.batches_done(self.trainer)

    def train_dataloader(self) -> DataLoader:
        """Resumable mid-epoch, each draw augmented from its own seed (``datamodules.resume``)."""
        return ResumableLoader(
            SeededDataset(list(self.train_sets.values())),
            batch_size=self.batch_size,
            sampler=self.train_sampler(),
            drop_last=True,
            collate_fn=self.collate,
            batches_done=self.batches_done,
            **self.loader_kwargs,
        )

    def _eval_loaders(self, datasets: Mapping[str, Dataset]) -> list[DataLoader]:
        rank, world_size = self.distributed()
        if small := {k: len(d) for k, d in datasets.items() if 0 < len(d) < world_size}:
            raise ValueError(f"evaluation sets {small} have fewer samples than the {world_size} "
                             f"ranks: every rank must score at least one")  # fmt: skip
        return [
            DataLoader(
                d,
                batch_size=self.eval_batch_size,
                sampler=EvalShard(len(d), rank, world_size),
                collate_fn=collate_readable,
                **self.loader_kwargs,
            )  # fmt: skip
            for d in datasets.values()
        ]

    def gather_missing(self, stage: str) -> None:
        """Under DDP: every rank's ``missing["<stage>/…"]`` becomes the sum over the ranks (all
        ranks must call it)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        mine = {k: log for k, log in self.missing.items() if k.startswith(f"{stage}/")}
        ranks: list[dict[str, MissingLog]] = [{} for _ in range(dist.get_world_size())]
        dist.all_gather_object(ranks, mine)
        for key in sorted({k for logs in ranks for k in logs}):
            self.missing[key] = MissingLog.merge([logs[key] for logs in ranks if key in logs])

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Evaluation batches: their unreadable samples go to ``missing["<stage>/<source>"]``
        (an empty dict is left when none of the batch could be read; the task modules skip it)."""
        if self.trainer is None or self.trainer.training:
            return batch
        stage = "test" if self.trainer.testing else "val"
        key = f"{stage}/{getattr(self, f'{stage}_names')[dataloader_idx]}"
        kept = self.missing.setdefault(key, MissingLog()).take(batch)
        return {} if kept is None else kept

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders(self.val_sets)

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders(self.test_sets)
