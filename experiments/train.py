"""Train one experiment, then evaluate its test split.

    python -m experiments.train <config> [dotlist overrides]
    python -m experiments.train penn data.root=/data/PennAction trainer.devices=4 trainer.strategy=ddp

Stages: the task module (pose | action | joint) is fitted; with ``finetune.enabled`` the pose
network is then unfrozen and training goes on ``finetune.epochs`` more epochs at ``optim.lr`` ÷
``finetune.lr_divisor`` (``finetune.only``: that stage alone, from ``init.ckpt``); the best
checkpoint of the last stage is tested and the metrics printed. Each stage is its own logger run.
Files: the run folder ``<out_dir>/<name>`` (``experiments.run_folder``: config.yaml, best.ckpt,
last.ckpt, logs, ``finetune/``), locked while the run writes. ``resume=auto`` continues from the
stages' ``last.ckpt``. Start-up checks (``experiments.startup``) refuse, exit 2, before any work.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from datamodules.missing import MissingSamples, check_missing
from deephar.checkpoint import CheckpointError, load_checkpoint
from deephar.models.multitask import DeepHAR, build_model
from deephar.tasks import init_network, set_bn_momentum
from deephar.tasks.base import TaskModule
from deephar.tasks.finite import NonFiniteError
from experiments.cli import arguments
from experiments.config import ConfigError, load_config, network_config
from experiments.config_checks import validate
from experiments.data import build_datamodule, write_carved_splits
from experiments.distributed import is_rank_zero
from experiments.faults import EXIT_NONFINITE, Interrupted, SaveFailed
from experiments.logging import finish_logger, silence_known_warnings
from experiments.modules import build_module
from experiments.run_folder import (
    RunLock,
    finetunes,
    remove_partial_writes,
    resume_path,
    run_dir,
    save_config,
    stage_dir,
)
from experiments.startup import check_startup
from experiments.tables import metrics_table
from experiments.trainer import build_trainer, signal_callback
from experiments.training_defaults import resolve_training_defaults


def finetune_lr(cfg: DictConfig) -> float:
    """The one meaning of fine-tuning's rate: ``optim.lr`` ÷ ``finetune.lr_divisor``."""
    return cfg.optim.lr / cfg.finetune.lr_divisor


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
    """Test the best checkpoint of ``trainer`` (the current weights without one) on the test
    sets that have samples (an empty one was named at start-up)."""
    data.test_sets = {k: d for k, d in (data.test_sets or {}).items() if len(d) > 0}
    if not data.test_sets:
        return {}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    trainer.test(module, datamodule=data, ckpt_path=best or None, verbose=False, weights_only=True)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def build_network(cfg: DictConfig, net: DeepHAR | None) -> DeepHAR:
    """``net``, or ``build_model`` of ``cfg.model`` initialised from ``cfg.init``."""
    if net is None:
        net = build_model(network_config(cfg))
        init_network(net, cfg.init.ckpt, cfg.init.keras_h5, str(cfg.init.members))
    if cfg.bn_momentum > 0:
        set_bn_momentum(net, cfg.bn_momentum)
    return net


@dataclass
class Fitted:
    """The last stage of a run: its trainer (checkpoints, metrics) and its task module."""

    trainer: pl.Trainer
    module: TaskModule


def fit(cfg: DictConfig, net: DeepHAR, data) -> Fitted:
    """The first stage (unless skipped: ``finetune.only``, or resuming the finetune stage), then
    the fine-tuning stage."""
    skip_main = finetunes(cfg) and (cfg.finetune.only or resume_path(cfg, "finetune") is not None)
    module = build_module(cfg, net)
    trainer = None if skip_main else _fit(cfg, module, data, "main")
    if finetunes(cfg):
        if trainer is not None:
            finish_logger(trainer.logger)
        module = build_module(cfg, net, "finetune", finetune_lr(cfg))
        trainer = _fit(cfg, module, data, "finetune")
    return Fitted(trainer, module)


def run(cfg: DictConfig, net: DeepHAR | None = None) -> dict[str, float]:
    """Validate, lock the run folder, fit (and fine-tune), test; returns the test metrics
    {"test/acc": …} and the last validation epoch's metrics {"val/acc": …}
    (``experiments.crossval`` scores a fold by them).

    net: a network to train (e.g. the one of a previous stage); default ``build_model`` of
    ``cfg.model`` initialised from ``cfg.init``.
    """
    cfg = resolve_training_defaults(cfg, verbose=is_rank_zero())
    validate(cfg)
    check_startup(cfg)
    with RunLock(run_dir(cfg)):
        return _run(cfg, net)


def _run(cfg: DictConfig, net: DeepHAR | None) -> dict[str, float]:
    silence_known_warnings()
    if cfg.threads > 0:  # small networks on shared cores: more threads only wait on each other
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True)
    save_config(cfg)
    net = build_network(cfg, net)
    data = build_datamodule(cfg)
    if is_rank_zero():
        write_carved_splits(data, run_dir(cfg))
    fitted = fit(cfg, net, data)
    trainer, module = fitted.trainer, fitted.module
    last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics = test_metrics(trainer, module, data)
    metrics |= {
        f"{k}/unreadable": float(log.failed) for k, log in data.missing.items() if log.unreadable
    }
    if metrics and trainer.is_global_zero:
        print(metrics_table(metrics, f"test metrics of {cfg.name}"), flush=True)
    finish_logger(trainer.logger, metrics)
    for line in check_missing(data.missing, cfg.eval.allow_missing, "eval.allow_missing=true"):
        print(f"warning: {line}", file=sys.stderr)  # allowed: reported, not scored
    return metrics | last_val


def main(argv: list[str] | None = None) -> int:
    argv, code = arguments(argv, __doc__)
    if code is not None:
        return code
    try:
        run(load_config(argv[0], argv[1:]))
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
    except NonFiniteError as err:  # no checkpoint holds the non-finite state
        sys.stderr.write(f"error: {err}\n")  # one write: DDP ranks' lines never interleave
        sys.stderr.flush()
        return EXIT_NONFINITE
    return 0


if __name__ == "__main__":
    sys.exit(main())
