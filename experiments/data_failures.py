"""``LogDataFailures``: the training run's callback for samples that could not be read."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from datamodules.missing import MissingLog, MissingSamples
from experiments.data import failures


def _gather_missing(trainer: pl.Trainer, stage: str) -> None:
    if hasattr(trainer.datamodule, "gather_missing"):
        trainer.datamodule.gather_missing(stage)


class LogDataFailures(Callback):
    """Logs the corrupt training samples replaced so far (``data/failures_<stage>/<source>``) and
    the validation / test samples that could not be read (``data/unreadable_<stage>``, not
    replaced: ``datamodules.missing``), summed over the DDP ranks; each validation epoch counts
    its own, and one with no readable sample of a source stops the run."""

    def _log(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.datamodule is not None and not trainer.sanity_checking:
            for key, count in failures(trainer.datamodule).items():  # each rank's own
                module.log(f"data/failures_{key}", float(count), sync_dist=True, reduce_fx="sum")
            for key, log in getattr(trainer.datamodule, "missing", {}).items():
                module.log(f"data/unreadable_{key}", float(log.failed))

    def on_validation_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        for key in [k for k in getattr(trainer.datamodule, "missing", {}) if k.startswith("val/")]:
            trainer.datamodule.missing[key] = MissingLog()

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """A validation source of which no sample could be read stops the run, named: the
        checkpoint, early stopping and the schedule would have nothing to go on (runs before
        ``ModelCheckpoint``, which Lightning orders last)."""
        if trainer.sanity_checking:  # a few batches only
            return
        _gather_missing(trainer, "val")
        for key, log in getattr(trainer.datamodule, "missing", {}).items():
            if key.startswith("val/") and log.unreadable and not log.scored:
                raise MissingSamples(
                    f"{key}: {log.summary()}: no validation sample of this source could be "
                    f"read; repair its files or drop it from data.val"
                )

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._log(trainer, module)

    def on_test_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        _gather_missing(trainer, "test")
        self._log(trainer, module)
