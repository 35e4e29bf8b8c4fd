"""A quiet CPU Trainer for the task-module tests (no logger, checkpoints or progress bar)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytorch_lightning as pl


@pytest.fixture
def cpu_trainer(tmp_path) -> Callable[..., pl.Trainer]:
    def make(**kwargs) -> pl.Trainer:
        args = dict(accelerator="cpu", logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False,
                    num_sanity_val_steps=0, default_root_dir=str(tmp_path))  # fmt: skip
        return pl.Trainer(**(args | kwargs))

    return make
