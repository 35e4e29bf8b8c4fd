"""The Trainer side of exact resume: ``FreshResumedEpoch``, a callback of every training run.

``datamodules.resume.ResumableLoader`` saves (epoch, batches done) in the checkpoint and skips
those batches when restored; this callback makes Lightning's first resumed epoch use that
position and the right epoch's draws. It also checks, when training starts, that the installed
Lightning has every internal attribute the project relies on (``deephar.lightning_internals``).
"""

from __future__ import annotations

from pytorch_lightning import Callback, LightningModule, Trainer

from datamodules.resume import ResumableLoader
from deephar import lightning_internals as internals


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

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Before any step: the Lightning internals used by resume and signals exist."""
        if stage == "fit":
            internals.check(trainer)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Restored run: the loader's saved position, for the epoch the Trainer continues."""
        loader = trainer.train_dataloader
        if not isinstance(loader, ResumableLoader):
            return
        pending = internals.take_pending_loader_states(trainer)  # restored, not yet applied
        if pending:
            loader.load_state_dict(pending[0])
            loader.sampler.set_epoch(internals.epochs_processed(trainer))  # as the Trainer will
            internals.remake_train_iterator(trainer)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """An iterator made for another epoch than the one starting is made again (unless
        Lightning makes one itself)."""
        loader = trainer.train_dataloader
        stale = isinstance(loader, ResumableLoader) and loader.iter_epoch != loader.sampler.epoch
        if stale and not internals.lightning_remakes_iterator(trainer):
            internals.remake_train_iterator(trainer)
