"""A training whose loss is not finite stops, named; no checkpoint holds non-finite tensors.

- ``LossWatch`` (one per task module): every training step ORs ``~isfinite`` of the loss and of
  each of its logged terms into flags that stay on the device, and keeps there the first step at
  which one of them was not finite: no host sync per step.
- ``LossWatch.raise_if_flagged``: the flags are read (one device → host copy; under DDP one
  all-reduce first, so that every rank gets the same answer at the same step) only where the
  loggers read their values anyway: every ``trainer.log_every_n_steps``-th step, at the last
  step of an epoch, before each validation and before each checkpoint is written.
- ``check_checkpoint``: before a checkpoint is written, its weights and optimiser state are
  checked finite (one read per save; saves are rare).
- Either raises ``NonFiniteError``, whose message is one line: the step, the non-finite terms
  and the last finite checkpoint on disk. ``experiments.train`` exits with
  ``experiments.faults.EXIT_NONFINITE`` on it.

Steps are counted as in checkpoints (``global_step`` after the step): the loss of the k-th
optimiser step is "step k".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

NO_STEP = 2**62  # the first non-finite step while every loss was finite


class NonFiniteError(RuntimeError):
    """Training stopped on a non-finite loss or state; the message is the line to print."""


@dataclass(frozen=True)
class NonFiniteReport:
    """What the ranks agreed on: the first step with a non-finite loss term and those terms."""

    first_step: int
    terms: tuple[str, ...]


def world_group() -> bool:
    """Whether the flags must be agreed on by several ranks (an initialised process group)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class LossWatch:
    """Per loss term, a device flag "was ever non-finite", and the first such step.

    ``observe(terms, step)`` at each training step: ``terms`` {name: scalar tensor}; device ops
    only. ``report()`` reads them (a sync; a collective under DDP: every rank must call it at the
    same point) → ``NonFiniteReport`` or None.
    """

    def __init__(self) -> None:
        self.flags: dict[str, Tensor] = {}  # name → () bool, on the loss's device
        self.first: Tensor | None = None  # () int64: the first flagged step, NO_STEP if none

    def observe(self, terms: Mapping[str, Tensor], step: int) -> None:
        """OR ``~isfinite`` of each term (scalar or not: any element) into its flag."""
        any_bad: Tensor | None = None
        for name, value in terms.items():
            bad = ~torch.isfinite(value.detach()).all()
            self.flags[name] = bad if name not in self.flags else self.flags[name] | bad
            any_bad = bad if any_bad is None else any_bad | bad
        if any_bad is None:
            return
        if self.first is None:
            self.first = torch.full((), NO_STEP, dtype=torch.long, device=any_bad.device)
        self.first = torch.where(any_bad & (self.first == NO_STEP), step, self.first)

    def report(self) -> NonFiniteReport | None:
        """The flags of this process (every rank's, under DDP) read once; None: all finite."""
        if self.first is None:  # no training step yet (on every rank alike)
            return None
        names = sorted(self.flags)
        packed = torch.stack([self.flags[n].long() for n in names] + [-self.first])  # (N + 1,)
        if world_group():
            dist.all_reduce(packed, op=dist.ReduceOp.MAX)
        values = packed.tolist()
        terms = tuple(n for n, bad in zip(names, values) if bad)
        return NonFiniteReport(-values[-1], terms) if terms else None

    def raise_if_flagged(self, trainer: pl.Trainer) -> None:
        """Read the flags (see ``report``); a non-finite term stops training: ``NonFiniteError``
        naming the step, the terms and the last finite checkpoint."""
        if (found := self.report()) is not None:
            raise NonFiniteError(
                f"non-finite loss at step {found.first_step} ({', '.join(found.terms)}; "
                f"read at step {trainer.global_step}): training stopped; "
                f"{last_checkpoint_line(trainer)}; lower optim.lr or check the data"
            )


def read_due(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether the flags are read at the end of this training batch: at the log steps (the
    loggers read the device then too) and at the last batch of the epoch or of the run. Every
    rank at the same batches (not in ``on_train_epoch_end``, where rank 0 alone reads the
    logged values and so enters Lightning's collectives before the other ranks)."""
    every = trainer.log_every_n_steps
    if every and trainer.global_step % every == 0:
        return True
    last_step = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
    return last_step or batch_idx + 1 >= trainer.num_training_batches


# ---- checkpoints ----
def nonfinite_tensors(checkpoint: Mapping[str, Any], prefix: str) -> tuple[list[str], int]:
    """The names of the non-finite floating-point tensors of the network (the ``state_dict``
    keys that start with ``prefix``: not the metric states, whose best-so-far starts at ±inf) and
    the optimiser states of ``checkpoint``, and how many floating-point tensors were checked."""
    tensors: dict[str, Tensor] = {}
    for key, value in checkpoint.get("state_dict", {}).items():
        if key.startswith(prefix):
            tensors[key] = value
    for k, optimizer in enumerate(checkpoint.get("optimizer_states", [])):
        for param, state in optimizer.get("state", {}).items():
            for name, value in state.items():
                tensors[f"optimizer{k}.state.{param}.{name}"] = value
    tensors = {k: v for k, v in tensors.items() if isinstance(v, Tensor) and v.is_floating_point()}
    by_device: dict[torch.device, list[str]] = {}
    for key, value in tensors.items():
        by_device.setdefault(value.device, []).append(key)
    bad: list[str] = []
    for keys in by_device.values():  # one read per device
        finite = torch.stack([torch.isfinite(tensors[k]).all() for k in keys]).tolist()
        bad += [k for k, ok in zip(keys, finite) if not ok]
    return bad, len(tensors)


def check_checkpoint(
    checkpoint: Mapping[str, Any], trainer: pl.Trainer | None, prefix: str = "net."
) -> None:
    """``NonFiniteError`` instead of writing a checkpoint with non-finite weights (``state_dict``
    keys from ``prefix``) or optimiser state (under DDP the ranks agree: a collective, as the
    save itself is on every rank)."""
    bad, total = nonfinite_tensors(checkpoint, prefix)
    count = len(bad)
    if world_group():
        agreed = torch.tensor([count])
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        count = int(agreed.item())
    if count:
        example = f", e.g. {bad[0]}" if bad else ""
        raise NonFiniteError(
            f"non-finite weights or optimiser state at step {checkpoint.get('global_step', '?')} "
            f"({count} of {total} tensors{example}): checkpoint not written, training stopped; "
            f"{last_checkpoint_line(trainer)}; lower optim.lr or check the data"
        )


def last_checkpoint_line(trainer: pl.Trainer | None) -> str:
    """The line "last finite checkpoint: <path> (step N)": the newest checkpoint of the run's
    ``ModelCheckpoint`` callbacks (each written through ``check_checkpoint``)."""
    callbacks = trainer.checkpoint_callbacks if trainer is not None else []
    paths = {
        Path(c.best_model_path)
        for c in callbacks
        if isinstance(c, ModelCheckpoint) and c.best_model_path
    }
    found = sorted((p for p in paths if p.is_file()), key=lambda p: os.stat(p).st_mtime)
    if not found:
        return "no checkpoint was written"
    newest = found[-1]
    try:
        step = torch.load(newest, map_location="cpu", weights_only=True, mmap=True)["global_step"]
    except Exception:  # noqa: BLE001 - the path alone is still worth naming
        return f"last finite checkpoint: {newest}"
    return f"last finite checkpoint: {newest} (step {step})"
