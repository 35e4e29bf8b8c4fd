"""The trainer factory: a ``pytorch_lightning.Trainer`` for one stage of a run."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)

from experiments.data_failures import LogDataFailures
from experiments.distributed import GlobalBatch, ReleaseProcessGroup, resolve_strategy
from experiments.faults import AtomicCheckpointIO, RNGState, SaveOnSignal
from experiments.logging import build_logger
from experiments.progress import EpochLine
from experiments.resume import FreshResumedEpoch
from experiments.run_folder import stage_dir
from experiments.training_defaults import resolve_training_defaults


def poses_only(cfg: DictConfig) -> bool:
    """Training on provided poses leaves the appearance branch without gradients."""
    return any(
        s.stage == "action" and s.options.get("mode") == "poses" for s in cfg.data.sources.values()
    )


def checkpoints(cfg: DictConfig, stage: str) -> list[Callback]:
    """best.ckpt (on the monitored metric; the last epoch's without validation) and last.ckpt
    every epoch, improved or not (Lightning's save_last writes it only when best.ckpt was written
    at the same step)."""
    folder = stage_dir(cfg, stage)
    monitor = cfg.optim.monitor if cfg.data.val else None
    best = ModelCheckpoint(
        dirpath=folder,
        filename="best",
        monitor=monitor,
        mode=str(cfg.optim.monitor_mode),
        save_top_k=1,
        enable_version_counter=False,
    )
    last = ModelCheckpoint(
        dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    return [best, last]


def build_trainer(cfg: DictConfig, stage: str = "main") -> pl.Trainer:
    """Trainer of ``cfg.trainer`` with best/last checkpoints in the stage folder, the logger,
    the lr monitor, the corrupt-sample counter, one plain line per epoch, the process group's
    release at exit and early stopping (``optim.early_stop_patience`` > 0) on the validation
    metric."""
    folder = stage_dir(cfg, stage)
    trainer = resolve_training_defaults(cfg, verbose=False).trainer
    args: dict[str, Any] = OmegaConf.to_container(trainer, resolve=True, enum_to_str=True)
    args["strategy"] = resolve_strategy(
        args["strategy"], args["accelerator"], args["devices"], args["num_nodes"], poses_only(cfg)
    )
    if stage == "finetune":
        args["max_epochs"], args["max_steps"] = cfg.finetune.epochs, -1
    callbacks: list[Callback] = checkpoints(cfg, stage) + [
        LogDataFailures(),
        SaveOnSignal(folder / "last.ckpt"),  # on a signal: last.ckpt at that step
        RNGState(),
        FreshResumedEpoch(),
        EpochLine(),
        ReleaseProcessGroup(),
        GlobalBatch(cfg.data.batch_size),
    ]
    if cfg.data.val and cfg.optim.early_stop_patience > 0:
        mode = str(cfg.optim.monitor_mode)
        callbacks.append(
            EarlyStopping(cfg.optim.monitor, patience=cfg.optim.early_stop_patience, mode=mode)
        )
    second = stage == "finetune" and not cfg.finetune.only  # a run of its own after "main"
    logger = build_logger(cfg, folder / "logs", "-finetune" if second else "")
    if logger:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    return pl.Trainer(
        **args,
        logger=logger,
        callbacks=callbacks,
        default_root_dir=str(folder),
        plugins=[AtomicCheckpointIO()],
        benchmark=cfg.cudnn_benchmark and not args["deterministic"],
    )


def signal_callback(trainer: pl.Trainer) -> SaveOnSignal:
    """The trainer's ``SaveOnSignal`` (its ``handling()`` wraps fit)."""
    return next(c for c in trainer.callbacks if isinstance(c, SaveOnSignal))
