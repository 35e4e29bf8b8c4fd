"""``trainer.precision: auto`` and ``channels_last: auto``: the training defaults of the machine.

Resolved once per run, before its config is saved (so ``config.yaml`` records what the run
used, and ``evaluate`` scores its checkpoints the same way), by
``deephar.models.precision.choose_training`` for the device the trainer will run on: on a CPU
channels_last, and bf16-mixed where the CPU multiplies bf16 natively; on a GPU bf16-mixed +
channels_last where it has native bf16. The choice is printed once per process. An explicit value
(``trainer.precision=32-true``, ``channels_last=false``) is kept as given.

``DEEPHAR_TRAINING=reference`` resolves ``auto`` to the official recipe's numerics (fp32, NCHW)
on any machine: the tests set it, so that their figures do not depend on the CPU running them.
"""

from __future__ import annotations

import os
import sys

import torch
from omegaconf import DictConfig

from deephar.models.precision import TrainingDefaults, choose_training

AUTO = "auto"
REFERENCE = TrainingDefaults(False, "32-true", "DEEPHAR_TRAINING=reference")
_ANNOUNCED: set[str] = set()


def training_device(cfg: DictConfig) -> torch.device:
    """The device kind ``cfg.trainer.accelerator`` trains on: CUDA for ``gpu`` / ``cuda`` (and
    for ``auto`` where a GPU is visible), else the CPU."""
    accelerator = str(cfg.trainer.accelerator)
    gpu = accelerator in ("gpu", "cuda") or (accelerator == AUTO and torch.cuda.is_available())
    return torch.device("cuda" if gpu else "cpu")


def machine_defaults(cfg: DictConfig) -> TrainingDefaults:
    """The training defaults of this machine for ``cfg``'s accelerator."""
    if os.environ.get("DEEPHAR_TRAINING", "").lower() == "reference":
        return REFERENCE
    return choose_training(training_device(cfg))


def resolve_training_defaults(cfg: DictConfig, verbose: bool = True) -> DictConfig:
    """``cfg`` with ``trainer.precision`` and ``channels_last`` that are ``auto`` replaced by the
    machine's choice (the same object when neither is ``auto``; else a copy); ``verbose``: the
    values a run trains with, and why, printed once per process (stderr)."""
    auto_precision, auto_layout = cfg.trainer.precision == AUTO, cfg.channels_last == AUTO
    if not (auto_precision or auto_layout):
        return cfg
    chosen = machine_defaults(cfg)
    cfg = cfg.copy()
    if auto_precision:
        cfg.trainer.precision = chosen.precision
    if auto_layout:
        cfg.channels_last = chosen.channels_last
    used = TrainingDefaults(bool(cfg.channels_last), str(cfg.trainer.precision), chosen.reason)
    if verbose and used.describe() not in _ANNOUNCED:
        _ANNOUNCED.add(used.describe())
        print(f"deephar training: {used.describe()}", file=sys.stderr, flush=True)
    return cfg
