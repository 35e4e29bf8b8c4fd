"""Every use of Lightning's private internals, in this one module, each checked by name.

Lightning has no public API for what exact resume and signal handling need:

- the loader position a restored run has not yet handed to the loader
  (``fit_loop._combined_loader_states_to_load``) and re-making the training iterator
  (``fit_loop._data_fetcher``): ``experiments.resume.FreshResumedEpoch``;
- the batches trained on in the current epoch and the epochs done (the fit loop's progress
  counters), and whether Lightning makes the epoch's iterator itself (its restart flags):
  ``datamodules.mixed.MixedRatioDataModule.batches_done``, ``FreshResumedEpoch``;
- stopping the loops at the next step boundary as Lightning's SIGTERM handler does
  (``Trainer._signal_connector.received_sigterm``): ``experiments.faults.SaveOnSignal``;
- a value shown on the progress bar that was not logged with ``prog_bar=True`` (which would read
  it from the device at every step): writing into the dict ``Trainer.progress_bar_metrics``
  returns (``deephar.tasks.base.TaskModule.on_train_batch_end``);
- whether a LightningModule is attached to a Trainer (``LightningModule._trainer``; its
  ``trainer`` property raises when not): ``TaskModule.configure_optimizers``.

The version they are written for is pinned in ``requirements/constraints.txt``. ``check(trainer)``
(``FreshResumedEpoch.setup``, when training starts) raises ``LightningInternalsError`` naming the
attribute and the installed Lightning version when one is missing, before any step is trained.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

# Attribute paths from the Trainer, each used below.
INTERNALS = (
    "fit_loop._combined_loader_states_to_load",
    "fit_loop._data_fetcher",
    "fit_loop.is_resuming",
    "fit_loop.epoch_progress.current.processed",
    "fit_loop.epoch_progress.current.started",
    "fit_loop.epoch_progress.current.ready",
    "fit_loop.epoch_loop.restarting",
    "fit_loop.epoch_loop.batch_progress.current.completed",
    "_signal_connector.received_sigterm",
    "progress_bar_metrics",
)


class LightningInternalsError(RuntimeError):
    """The installed Lightning lacks an internal attribute this project relies on."""


def _lookup(trainer: Any, path: str) -> Any:
    """``trainer.<path>``, or a ``LightningInternalsError`` naming the missing attribute."""
    obj = trainer
    for depth, name in enumerate(path.split(".")):
        if not hasattr(obj, name):
            missing = ".".join(["Trainer", *path.split(".")[: depth + 1]])
            raise LightningInternalsError(
                f"pytorch_lightning {pl.__version__} has no {missing} (used for exact resume and "
                f"signals, deephar.lightning_internals): install the version of "
                f"requirements/constraints.txt (`make install`)"
            )
        obj = getattr(obj, name)
    return obj


def check(trainer: pl.Trainer) -> None:
    """Every attribute of ``INTERNALS`` exists on ``trainer`` (else ``LightningInternalsError``)."""
    for path in INTERNALS:
        _lookup(trainer, path)


# ---- the restored loader position (fit loop) ----
def take_pending_loader_states(trainer: pl.Trainer) -> list[dict[str, Any]]:
    """The loader states a restored run has not given to its loader yet; Lightning's list is
    emptied (they are applied by the caller instead)."""
    states = list(_lookup(trainer, "fit_loop._combined_loader_states_to_load"))
    if states:
        trainer.fit_loop._combined_loader_states_to_load = []
    return states


def remake_train_iterator(trainer: pl.Trainer) -> None:
    """Make the training iterator again (nothing of the old one may have been consumed)."""
    iter(_lookup(trainer, "fit_loop._data_fetcher"))


def lightning_remakes_iterator(trainer: pl.Trainer) -> bool:
    """Whether Lightning makes a fresh iterator for the epoch starting
    (``TrainingEpochLoop.on_run_start``'s rule)."""
    resuming = _lookup(trainer, "fit_loop.is_resuming")
    restarting = _lookup(trainer, "fit_loop.epoch_loop.restarting")
    return trainer.current_epoch > 0 and not resuming and not restarting


# ---- progress counters ----
def epochs_processed(trainer: pl.Trainer) -> int:
    """Epochs the fit loop has finished (the epoch the Trainer sets on the sampler next)."""
    return int(_lookup(trainer, "fit_loop.epoch_progress.current.processed"))


def batches_done(trainer: pl.Trainer) -> int:
    """Batches trained on in the current epoch (0 between epochs)."""
    started = _lookup(trainer, "fit_loop.epoch_progress.current.started")
    ready = _lookup(trainer, "fit_loop.epoch_progress.current.ready")
    completed = _lookup(trainer, "fit_loop.epoch_loop.batch_progress.current.completed")
    return int(completed) if started == ready else 0


# ---- signals ----
def request_stop(trainer: pl.Trainer) -> None:
    """Stop the loops at the next step boundary, as Lightning's own SIGTERM handler does
    (``trainer.received_sigterm`` becomes True; the fit loop raises ``SIGTERMException``)."""
    connector = _lookup(trainer, "_signal_connector")
    _lookup(trainer, "_signal_connector.received_sigterm")
    connector.received_sigterm = True


# ---- the progress bar and the module's trainer ----
def show_on_progress_bar(trainer: pl.Trainer, key: str, value: float) -> None:
    """``key: value`` on the progress bar until replaced (a host value: no device read)."""
    _lookup(trainer, "progress_bar_metrics")[key] = value


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The Trainer ``module`` is attached to, or None (``module.trainer`` would raise)."""
    if not hasattr(module, "_trainer"):
        raise LightningInternalsError(
            f"pytorch_lightning {pl.__version__} has no LightningModule._trainer (used to ask "
            f"whether a module is attached, deephar.lightning_internals): install the version of "
            f"requirements/constraints.txt (`make install`)"
        )
    return module._trainer
