"""Train one experiment, then evaluate its test split.

    python -m experiments.train <config> [dotlist overrides]
    python -m experiments.train penn data.root=/data/PennAction trainer.devices=4 trainer.strategy=ddp

Stages: the task module (pose | action | joint) is fitted; with ``finetune.enabled`` the pose
network is then unfrozen and training goes on ``finetune.epochs`` more epochs at ``optim.lr`` ÷
``finetune.lr_divisor`` (``finetune.only``: that stage alone, from ``init.ckpt``); the best
checkpoint of the last stage is tested and the metrics printed. Each stage is its own logger run.
Files: ``<out_dir>/<name>/{config.yaml, best.ckpt, last.ckpt, logs}`` (+ ``finetune/`` for the
second stage). ``resume=auto`` continues from the stages' ``last.ckpt``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)

from datamodules.missing import MissingLog, MissingSamples, check_missing
from deephar.checkpoint import CheckpointError, load_checkpoint
from deephar.models.multitask import DeepHAR, build_model
from deephar.tasks import ActionModule, JointModule, Pose2D3DModule, init_network, set_bn_momentum
from deephar.tasks.base import TaskModule
from experiments.cli import arguments
from experiments.config import (
    ConfigError,
    load_config,
    network_config,
    resume_changes,
    validate,
)
from experiments.data import build_datamodule, failures, write_carved_splits
from experiments.distributed import (
    GlobalBatch,
    ReleaseProcessGroup,
    is_rank_zero,
    resolve_strategy,
)
from experiments.faults import (
    AtomicCheckpointIO,
    Interrupted,
    RNGState,
    SaveFailed,
    SaveOnSignal,
    remove_partial_writes,
)
from experiments.logging import build_logger, finish_logger, silence_known_warnings
from experiments.modules import build_module
from experiments.progress import EpochLine
from experiments.resume import FreshResumedEpoch


def run_dir(cfg: DictConfig) -> Path:
    """``<out_dir>/<name>``: config.yaml, best.ckpt, last.ckpt, logs (finetune/ inside)."""
    return Path(cfg.out_dir) / cfg.name


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    return run_dir(cfg) / "finetune" if stage == "finetune" else run_dir(cfg)


def best_checkpoint(cfg: DictConfig) -> Path:
    """The checkpoint ``run`` tests: the last stage's best.ckpt."""
    return stage_dir(cfg, "finetune" if finetunes(cfg) else "main") / "best.ckpt"


def finetunes(cfg: DictConfig) -> bool:
    return cfg.task != "pose" and cfg.finetune.enabled


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

    def on_validation_epoch_start(self, trainer, module):
        for key in [k for k in getattr(trainer.datamodule, "missing", {}) if k.startswith("val/")]:
            trainer.datamodule.missing[key] = MissingLog()

    def on_validation_end(self, trainer, module):
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

    def on_train_epoch_end(self, trainer, module):
        self._log(trainer, module)

    def on_test_epoch_end(self, trainer, module):
        _gather_missing(trainer, "test")
        self._log(trainer, module)


def poses_only(cfg: DictConfig) -> bool:
    """Training on provided poses leaves the appearance branch without gradients."""
    return any(
        s.stage == "action" and s.options.get("mode") == "poses" for s in cfg.data.sources.values()
    )


def build_trainer(cfg: DictConfig, stage: str = "main") -> pl.Trainer:
    """Trainer of ``cfg.trainer`` with best/last checkpoints in the stage folder, the logger,
    the lr monitor, the corrupt-sample counter, one plain line per epoch, the process group's
    release at exit and early stopping (``optim.early_stop_patience`` > 0) on the validation
    metric."""
    folder = stage_dir(cfg, stage)
    args: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    args["strategy"] = resolve_strategy(
        args["strategy"], args["accelerator"], args["devices"], args["num_nodes"], poses_only(cfg)
    )
    if stage == "finetune":
        args["max_epochs"], args["max_steps"] = cfg.finetune.epochs, -1
    monitor = cfg.optim.monitor if cfg.data.val else None
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=folder,
            filename="best",
            monitor=monitor,
            mode=cfg.optim.monitor_mode,
            save_top_k=1,
            enable_version_counter=False,
        ),
        # last.ckpt every epoch, improved or not (Lightning's save_last writes it only when
        # best.ckpt was written at the same step); on a signal: at that step (SaveOnSignal)
        ModelCheckpoint(
            dirpath=folder,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
        LogDataFailures(),
        SaveOnSignal(folder / "last.ckpt"),
        RNGState(),
        FreshResumedEpoch(),
        EpochLine(),
        ReleaseProcessGroup(),
        GlobalBatch(cfg.data.batch_size),
    ]
    if monitor and cfg.optim.early_stop_patience > 0:
        callbacks.append(
            EarlyStopping(
                monitor, patience=cfg.optim.early_stop_patience, mode=cfg.optim.monitor_mode
            )
        )
    second = stage == "finetune" and not cfg.finetune.only  # a run of its own after "main"
    logger = build_logger(cfg, folder / "logs", "-finetune" if second else "")
    if logger:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    benchmark = cfg.cudnn_benchmark and not args["deterministic"]
    return pl.Trainer(
        **args,
        logger=logger,
        callbacks=callbacks,
        default_root_dir=str(folder),
        plugins=[AtomicCheckpointIO()],
        benchmark=benchmark,
    )


def resume_path(cfg: DictConfig, stage: str) -> str | None:
    """``resume``: "" → None; "auto" → the stage's last.ckpt when present; else the given path."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        last = stage_dir(cfg, stage) / "last.ckpt"
        return str(last) if last.is_file() else None
    if stage == "finetune":
        return None
    if not Path(cfg.resume).is_file():
        raise ConfigError(f"resume = {cfg.resume!r}: no such checkpoint")
    return cfg.resume


def signal_callback(trainer: pl.Trainer) -> SaveOnSignal:
    return next(c for c in trainer.callbacks if isinstance(c, SaveOnSignal))


def _fit(cfg: DictConfig, module: TaskModule, data, stage: str) -> pl.Trainer:
    trainer = build_trainer(cfg, stage)
    remove_partial_writes(stage_dir(cfg, stage))
    ckpt = resume_path(cfg, stage)
    if ckpt:  # safe and readable (one line naming the file otherwise) before Lightning reads it
        load_checkpoint(ckpt)
    with signal_callback(trainer).handling():
        trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return trainer


def test_metrics(trainer: pl.Trainer, module: TaskModule, data) -> dict[str, float]:
    """Test the best checkpoint of ``trainer`` (the current weights without one)."""
    if not data.test_sets:
        return {}
    if empty := [k for k, d in data.test_sets.items() if len(d) == 0]:
        print(
            f"test split empty for {empty} (no test samples under the data root): not scored; "
            f"the validation metrics above are the run's result",
            flush=True,
        )
        data.test_sets = {k: d for k, d in data.test_sets.items() if len(d) > 0}
        if not data.test_sets:
            return {}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    trainer.test(module, datamodule=data, ckpt_path=best or None, verbose=False, weights_only=True)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def format_table(metrics: dict[str, float], title: str = "") -> str:
    width = max((len(k) for k in metrics), default=6)
    lines = [title] if title else []
    lines += [f"{'metric':<{width}}  value", f"{'-' * width}  ----------"]
    for key, value in sorted(metrics.items()):
        shown = f"{value:.2f}" if "mpjpe" in key else f"{value:.4f}"
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def run(cfg: DictConfig, net: DeepHAR | None = None) -> dict[str, float]:
    """Validate, fit (and fine-tune), test; returns the test metrics {"test/acc": …} and the
    last validation epoch's metrics {"val/acc": …} (``experiments.crossval`` scores a fold by them).

    net: a network to train (e.g. the one of a previous stage); default ``build_model`` of
    ``cfg.model`` initialised from ``cfg.init``.
    """
    validate(cfg)
    check_startup(cfg)
    silence_known_warnings()
    if cfg.threads > 0:  # small networks on shared cores: more threads only wait on each other
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True)
    folder = run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    if is_rank_zero():  # one writer on shared storage; the other ranks build the same config
        OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    if net is None:
        net = build_model(network_config(cfg))
        init_network(net, cfg.init.ckpt, cfg.init.keras_h5)
    if cfg.bn_momentum > 0:
        set_bn_momentum(net, cfg.bn_momentum)
    data = build_datamodule(cfg)
    if is_rank_zero():
        write_carved_splits(data, folder)
    skip_main = finetunes(cfg) and (cfg.finetune.only or resume_path(cfg, "finetune") is not None)
    module = build_module(cfg, net)
    trainer = None if skip_main else _fit(cfg, module, data, "main")
    if finetunes(cfg):
        if trainer is not None:
            finish_logger(trainer.logger)
        module = build_module(cfg, net, "finetune", finetune_lr(cfg))
        trainer = _fit(cfg, module, data, "finetune")
    last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics = test_metrics(trainer, module, data)
    metrics |= {
        f"{key}/unreadable": float(log.failed)
        for key, log in data.missing.items()
        if log.unreadable
    }
    if metrics and trainer.is_global_zero:
        print(format_table(metrics, f"test metrics of {cfg.name}"), flush=True)
    finish_logger(trainer.logger, metrics)
    for line in check_missing(data.missing, cfg.eval.allow_missing, "eval.allow_missing=true"):
        print(f"warning: {line}", file=sys.stderr)  # allowed: reported, not scored
    return metrics | last_val


def finetune_lr(cfg: DictConfig) -> float:
    """The one meaning of fine-tuning's rate: ``optim.lr`` ÷ ``finetune.lr_divisor``."""
    return cfg.optim.lr / cfg.finetune.lr_divisor


# ---- start-up checks: what would fail later, refused before any model or dataset is built ----
TASK_MODULES: dict[str, type[TaskModule]] = {
    "pose": Pose2D3DModule,
    "action": ActionModule,
    "joint": JointModule,
}
CHECKPOINT_FILES = 3  # best.ckpt, last.ckpt and the .partial of the one being replaced


def check_startup(cfg: DictConfig) -> None:
    """The monitored metric, the run folder (writable, room for the checkpoints) and a resume's
    config: a ``ConfigError`` naming the key or the folder, before any work."""
    check_monitor(cfg)
    check_resume_config(cfg)
    check_out_dir(cfg)
    check_free_space(cfg)


def check_monitor(cfg: DictConfig) -> None:
    """``optim.monitor`` must be a metric the task logs (it was found missing after an epoch)."""
    if not cfg.data.val:
        return  # nothing validates: nothing is monitored
    names = TASK_MODULES[cfg.task].val_metrics(network_config(cfg))
    if cfg.optim.monitor not in names:
        raise ConfigError(
            f"optim.monitor = {cfg.optim.monitor!r}: the {cfg.task} task logs {', '.join(names)}"
        )


def check_out_dir(cfg: DictConfig) -> None:
    """The run folder can be created and written (a read-only or missing mount fails here)."""
    folder = run_dir(cfg)
    probe = folder / f".write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"out_dir = {cfg.out_dir!r}: cannot write the run folder {folder} "
            f"({err.strerror or err})"
        ) from None


def checkpoint_bytes(cfg: DictConfig) -> int:
    """About the size of one checkpoint (at least it): the network's tensors (built on the meta
    device: no memory, no time), up to two optimiser states of each parameter, and the file's
    ~1 kB per tensor and 64 kB of loops, callbacks and settings."""
    with torch.device("meta"):
        net = build_model(network_config(cfg))
    params, buffers = list(net.parameters()), list(net.buffers())
    data = sum(3 * p.numel() * p.element_size() for p in params)
    data += sum(b.numel() * b.element_size() for b in buffers)
    return data + 1024 * (3 * len(params) + len(buffers)) + 2**16


def check_free_space(cfg: DictConfig) -> None:
    """Room in the run folder for the checkpoints of every stage (``CHECKPOINT_FILES`` each, less
    those already there, which are replaced): a full disk is named before the first epoch."""
    stages = ["main", "finetune"] if finetunes(cfg) else ["main"]
    files = sum(
        CHECKPOINT_FILES
        - sum((stage_dir(cfg, s) / f"{n}.ckpt").is_file() for n in ("best", "last"))
        for s in stages
    )
    size = checkpoint_bytes(cfg)
    free = shutil.disk_usage(run_dir(cfg)).free
    if free < files * size:
        raise ConfigError(
            f"out_dir = {cfg.out_dir!r}: {free / 1e6:.1f} MB free in {run_dir(cfg)}, "
            f"the checkpoints need about {files * size / 1e6:.1f} MB ({files} files "
            f"of {size / 1e6:.1f} MB)"
        )


def saved_config(cfg: DictConfig, ckpt: str) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to (its folder, or the one above for
    ``finetune/``); for ``resume=auto``, this run's."""
    if cfg.resume == "auto":
        candidates = [run_dir(cfg) / "config.yaml"]
    else:
        candidates = [Path(ckpt).parent / "config.yaml", Path(ckpt).parent.parent / "config.yaml"]
    return next((p for p in candidates if p.is_file()), None)


def check_resume_config(cfg: DictConfig) -> None:
    """A resumed run must be the saved one continued: the ``RESUME_KEYS`` that differ from its
    ``config.yaml`` are refused, named, unless ``resume_allow_changes`` lists them."""
    stages = ["main", "finetune"] if finetunes(cfg) else ["main"]
    ckpt = next((p for s in stages if (p := resume_path(cfg, s))), None)
    if ckpt is None or (saved := saved_config(cfg, ckpt)) is None:
        return
    if changes := resume_changes(OmegaConf.load(saved), cfg):
        listed = ", ".join(f"{k} = {now!r} (saved: {was!r})" for k, (was, now) in changes.items())
        keys = ",".join(changes)
        raise ConfigError(
            f"resume from {ckpt}: {listed} differ from the run's {saved}; rerun with "
            f"the saved values, or allow it: resume_allow_changes=[{keys}]"
        )


def main(argv: list[str] | None = None) -> int:
    argv, code = arguments(argv, __doc__)
    if code is not None:
        return code
    try:
        cfg = load_config(argv[0], argv[1:])
        run(cfg)
    except (ConfigError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MissingSamples as err:  # the metrics were printed: over the readable samples only
        print(f"error: unreadable evaluation samples: {err}", file=sys.stderr)
        return 3
    except Interrupted as stop:
        print(f"interrupted: {stop}", file=sys.stderr)
        return stop.exit_code
    except SaveFailed as err:  # mid-run: the checkpoints before it are intact
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
