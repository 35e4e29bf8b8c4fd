"""One plain line per epoch on stdout, readable in a log file as well as beside the rich bar.

    epoch 12/40 step 948 | train/loss 3.412 | val/loss 2.871 val/acc 0.9134 val/video_acc 0.9528
      | lr 1.21e-03 | 0:03:12 elapsed, ETA 0:07:28

Printed at the end of every training epoch (after that epoch's validation) by rank 0; metric
values come from ``trainer.callback_metrics`` (``train/*`` epoch means, ``val/*``, ``*_best``).
ETA = mean epoch time so far × epochs left (``max_epochs``, or ``max_steps`` when that is set).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

SHOWN = ("train/", "val/")  # metric prefixes on the line, in this order


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=int(round(max(0.0, seconds)))))


def format_value(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def epoch_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """Scalar ``callback_metrics`` by name; a metric logged per step and per epoch appears once,
    as its epoch value (``train/loss_epoch`` → ``train/loss``)."""
    out: dict[str, float] = {}
    items = sorted(trainer.callback_metrics.items(), key=lambda kv: kv[0].endswith("_epoch"))
    for key, value in items:
        if key.endswith("_step") or getattr(value, "numel", lambda: 1)() != 1:
            continue
        out[key.removesuffix("_epoch")] = float(value)
    return out


class EpochLine(Callback):
    """Prints one line per epoch: epoch, step, train / validation metrics, lr, elapsed, ETA."""

    def __init__(self, max_metrics: int = 12) -> None:
        self.max_metrics = max_metrics
        self.start: float | None = None
        self.first_epoch = self.first_step = 0

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = time.monotonic()
        self.first_epoch = trainer.current_epoch  # resumed runs: ETA from this run's epochs
        self.first_step = trainer.global_step

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.start is None:
            return
        print(self.line(trainer), flush=True)

    def line(self, trainer: pl.Trainer) -> str:
        elapsed = time.monotonic() - (self.start or time.monotonic())
        done = trainer.current_epoch + 1
        parts = [f"epoch {done}/{self._total_epochs(trainer)} step {trainer.global_step}"]
        metrics = epoch_metrics(trainer)
        for prefix in SHOWN:
            keys = sorted(k for k in metrics if k.startswith(prefix))[: self.max_metrics]
            if keys:
                parts.append(" ".join(f"{k} {format_value(metrics[k])}" for k in keys))
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.2e}")
        eta = self._eta(trainer, elapsed, done - self.first_epoch, self.first_step)
        parts.append(f"{_duration(elapsed)} elapsed, ETA {eta}")
        return " | ".join(parts)

    @staticmethod
    def _total_epochs(trainer: pl.Trainer) -> str:
        return str(trainer.max_epochs) if trainer.max_epochs and trainer.max_epochs > 0 else "?"

    @staticmethod
    def _eta(trainer: pl.Trainer, elapsed: float, epochs_run: int, first_step: int) -> str:
        if epochs_run <= 0:
            return "?"
        steps_run = trainer.global_step - first_step
        if trainer.max_steps and trainer.max_steps > 0 and steps_run > 0:
            left = (trainer.max_steps - trainer.global_step) / steps_run
            return _duration(elapsed * max(0.0, left))
        if trainer.max_epochs and trainer.max_epochs > 0:
            left = trainer.max_epochs - trainer.current_epoch - 1
            return _duration(elapsed / epochs_run * max(0, left))
        return "?"
