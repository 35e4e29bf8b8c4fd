"""MixedRatioDataModule: every training batch holds a fixed number of samples from each source.

This is the official ``BatchLoader`` (MPII + Human3.6M for 3D pose; pose images + action clips for
the multitask model) on PyTorch facilities: one ``DataLoader`` over the ``ConcatDataset`` of the
sources, whose sampler lays the indices out so that every block of ``batch_size`` consecutive
indices holds ``counts[s]`` samples of source s (in source order), and a collate that builds the
batch described below. How ``shares`` become integer counts, how each source cycles and how DDP
ranks split the sources: ``datamodules.sampling``. The training loader uses ``SeededSampler``
(each draw with its own seed, resumable mid-epoch) over a ``SeededDataset``, in a
``datamodules.resume.ResumableLoader`` (why: ``datamodules.resume``).

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

import os
from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np
import pytorch_lightning as pl
import torch.distributed as dist
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset, default_collate

from datamodules.missing import MissingLog, collate_readable
from datamodules.resume import ResumableLoader
from datamodules.sampling import (
    EvalShard,
    SeededDataset,
    SeededSampler,
    default_steps,
    split_counts,
)
from deephar import lightning_internals


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


def init_worker(worker_id: int) -> None:
    """Each DataLoader worker is one core's worth of decoding: OpenCV's thread pool (one thread
    per core of the machine, in every worker) is cut to one thread; then Lightning's per-worker
    seeding when ``seed_everything(..., workers=True)`` asked for it (Lightning adds its own
    ``worker_init_fn`` only to loaders that have none)."""
    cv2.setNumThreads(1)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id)


def fork_safe_opencv(num_workers: int) -> None:
    """Before loader workers fork from this process: its OpenCV thread pool is cut to one thread.
    A worker that resizes a pool inherited from a parent whose pool had run can wait for ever
    (``init_worker``'s ``cv2.setNumThreads`` stuck in ``pthread_cond_destroy``); while workers
    decode, the parent decodes nothing."""
    if num_workers > 0:
        cv2.setNumThreads(1)


class MixedRatioDataModule(pl.LightningDataModule):
    """Training on fixed per-source counts per batch; validation / test per dataset.

    train: {source: Dataset}; shares: {source: weight or count}; batch_size: per rank;
    steps_per_epoch: None → official length; groups: see module doc; rank / world_size: override
    what the attached Trainer (or torch.distributed) says — for tests without a Trainer;
    num_workers, pin_memory, persistent_workers: of every loader, whose workers start with
    ``init_worker`` (``experiments.data.loader_settings`` chooses them from the config).
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
        fork_safe_opencv(num_workers)
        self.loader_kwargs = dict(
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
            worker_init_fn=init_worker if num_workers > 0 else None,
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
            raise ValueError(
                f"evaluation sets {small} have fewer samples than the {world_size} "
                f"ranks: every rank must score at least one"
            )
        return [
            DataLoader(
                d,
                batch_size=self.eval_batch_size,
                sampler=EvalShard(len(d), rank, world_size),
                collate_fn=collate_readable,
                **self.loader_kwargs,
            )
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
