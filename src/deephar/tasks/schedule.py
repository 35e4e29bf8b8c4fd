"""Learning-rate schedules of the task modules (``optim.schedule``).

- ``cosine`` (default): linear warm-up over ``warmup`` × the run's steps, then a cosine from ``lr``
  down to ``min_lr_ratio`` × ``lr`` at the last step, updated every step. It depends only on the
  step count, so a noisy validation metric cannot cut the rate, and the run's length is known
  (``Trainer.estimated_stepping_batches``): the rate stays above 1e-3 × ``lr`` until the last
  ~1 % of the steps, and above 9 % of it until 80 % of them.
- ``plateau``: the paper's ReduceLROnPlateau (× ``plateau_factor`` after ``plateau_patience``
  epochs without improvement of ``monitor``), floored at ``min_lr_ratio`` × ``lr``. With a short
  patience on a noisy metric it collapses the rate early (Penn Action: 2e-4 → 3e-7 by epoch 39 of
  100, docs/penn_action.md).
- ``milestones``: the official MPII script's step schedule: lr × ``gamma`` at each epoch of
  ``milestones`` (0-based epoch index, as Keras' ``LearningRateScheduler`` counts: [80, 100]
  means the 81st and 101st epochs run at 0.2 and 0.04 × lr), stepped per epoch.
- ``constant``: no schedule.

``optim.scale_lr`` (``lr_scale``) multiplies ``lr`` (and with it every rate above) by the number of
devices (``linear``) or its square root (``sqrt``): ``data.batch_size`` is per device.
"""

from __future__ import annotations

import math
from typing import Any

import torch

SCHEDULES = ("cosine", "plateau", "milestones", "constant")
LR_SCALING = ("none", "linear", "sqrt")  # ``optim.scale_lr``


def lr_scale(rule: str, world_size: int) -> float:
    """``optim.scale_lr``: the factor of ``optim.lr`` for ``world_size`` devices, each with the
    config's ``data.batch_size`` (the batch ``lr`` was set for): ``none`` 1, ``linear`` N (Goyal
    et al. 2017, SGD), ``sqrt`` √N (adaptive optimisers: RMSprop, Adam)."""
    if rule not in LR_SCALING:
        raise ValueError(f"optim.scale_lr = {rule!r}: one of {LR_SCALING}")
    return {"none": 1.0, "linear": float(world_size), "sqrt": math.sqrt(world_size)}[rule]


def cosine_factor(step: int, total: int, warmup: float = 0.0, min_ratio: float = 1e-3) -> float:
    """Multiplier of the initial rate at ``step`` (0-based) of ``total``: linear warm-up over
    round(warmup × total) steps, then cosine from 1 to ``min_ratio`` at the last step."""
    warm = int(round(warmup * total))
    if step < warm:
        return (step + 1) / warm
    span = max(1, total - warm - 1)
    progress = min(1.0, (step - warm) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: Any, total_steps: int
) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` entry for ``settings`` (an ``OptimSettings``), or None."""
    if settings.schedule == "constant":
        return None
    if settings.schedule == "cosine":
        total = max(1, int(total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: cosine_factor(s, total, settings.warmup, settings.min_lr_ratio),
        )
        return {"scheduler": scheduler, "interval": "step"}
    if settings.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode=settings.monitor_mode,
            factor=settings.plateau_factor,
            patience=settings.plateau_patience,
            min_lr=settings.lr * settings.min_lr_ratio,
        )
        return {"scheduler": scheduler, "monitor": settings.monitor, "strict": False}
    if settings.schedule == "milestones":
        milestones = [int(m) for m in settings.milestones]
        if not milestones or milestones != sorted(set(milestones)) or milestones[0] <= 0:
            raise ValueError(
                f"optim.milestones = {list(settings.milestones)!r}: schedule=milestones needs "
                f"increasing epochs > 0"
            )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, settings.gamma)
        return {"scheduler": scheduler, "interval": "epoch"}
    raise ValueError(f"unknown optim.schedule {settings.schedule!r} (one of {SCHEDULES})")
