"""FreshResumedEpoch: the startup check of the Lightning internals it (and signals) rely on."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl

from deephar.lightning_internals import LightningInternalsError
from experiments.resume import FreshResumedEpoch


def make_trainer() -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip


def test_training_starts_only_with_the_internals_present():
    trainer = make_trainer()
    FreshResumedEpoch().setup(trainer, None, "fit")  # the installed Lightning has them all
    del trainer._signal_connector
    FreshResumedEpoch().setup(trainer, None, "test")  # checked for training only
    with pytest.raises(LightningInternalsError, match=r"has no Trainer\._signal_connector"):
        FreshResumedEpoch().setup(trainer, None, "fit")
