"""Numeric ranges of the config's keys, checked once when it is loaded (``experiments.config``).

``range_problem(cfg)`` returns the first key out of its range as one line naming the key and what
it may be, or None. (The keys with a set of names are typed in the schema: OmegaConf refuses them.)
"""

from __future__ import annotations

from typing import Any, get_args

from lightning_fabric.connector import _PRECISION_INPUT
from omegaconf import DictConfig, OmegaConf

POSITIVE, NON_NEGATIVE, FRACTION, SHARE = "> 0", ">= 0", "in (0, 1)", "in [0, 1)"
RANGES: dict[str, str] = {
    "data.batch_size": POSITIVE,
    "data.eval_batch_size": POSITIVE,
    "data.steps_per_epoch": NON_NEGATIVE,
    "data.num_workers": NON_NEGATIVE,
    "data.limit_val": NON_NEGATIVE,
    "data.val_fraction": SHARE,
    "seed": NON_NEGATIVE,
    "bn_momentum": NON_NEGATIVE,
    "model.input_size": POSITIVE,
    "model.num_joints": POSITIVE,
    "model.pose_blocks": POSITIVE,
    "model.kernel_size": POSITIVE,
    "model.num_frames": POSITIVE,
    "model.action_blocks": POSITIVE,
    "model.depth_maps": POSITIVE,
    "model.context_maps": NON_NEGATIVE,
    "model.num_actions": NON_NEGATIVE,
    "model.width": POSITIVE,
    "model.pose_members": POSITIVE,
    "optim.lr": POSITIVE,
    "optim.momentum": NON_NEGATIVE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.rho": FRACTION,
    "optim.eps": NON_NEGATIVE,
    "optim.gamma": FRACTION,
    "optim.plateau_factor": FRACTION,
    "optim.plateau_patience": NON_NEGATIVE,
    "loss.visibility_weight": NON_NEGATIVE,
    "loss.pose_weight": NON_NEGATIVE,
    "loss.action_weight": NON_NEGATIVE,
    "loss.label_smoothing": NON_NEGATIVE,
    "finetune.epochs": NON_NEGATIVE,
    "finetune.lr_divisor": POSITIVE,
    "trainer.num_nodes": POSITIVE,
    "trainer.gradient_clip_val": NON_NEGATIVE,
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.check_val_every_n_epoch": POSITIVE,
}
AUTO = ("data.num_workers",)  # keys that may also be "auto"
# -1 means "no limit" to Lightning; any other negative number is an error
LIMITS = ("trainer.max_epochs", "trainer.max_steps")
DEVICES = "auto, a count (1, 2, …; -1: all), or device indices ([0, 1] or '0,1')"


def _in_range(value: float, rule: str) -> bool:
    if rule == POSITIVE:
        return value > 0
    if rule == NON_NEGATIVE:
        return value >= 0
    if rule == SHARE:
        return 0 <= value < 1
    return 0 < value < 1


def devices_ok(value: Any) -> bool:
    """``trainer.devices`` as Lightning takes it: "auto", a count ≥ 1 or -1 (all), a list of
    device indices, or a string of either ("2", "0,1")."""
    if isinstance(value, str) and value != "auto":
        parts = [p.strip() for p in value.strip(",").split(",")]
        if not all(p.lstrip("-").isdigit() for p in parts):
            return False
        value = int(parts[0]) if len(parts) == 1 else [int(p) for p in parts]
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1 or value == -1
    if isinstance(value, str):
        return True  # "auto"
    return len(value) > 0 and all(isinstance(i, int) and i >= 0 for i in value)


# Lightning's precision names (an int too: YAML reads 16 as one, so the key stays a string)
PRECISIONS = tuple(dict.fromkeys(str(v) for g in get_args(_PRECISION_INPUT) for v in get_args(g)))


def range_problem(cfg: DictConfig) -> str | None:
    """Every numeric key of ``RANGES`` (and each source's ``share`` > 0, ``bn_momentum`` ≤ 1,
    the trainer's epoch / step limits ≥ -1, ``trainer.devices``, ``logger.offline``) in range;
    else the first one out of it, named with what it may be."""
    checks = [(key, OmegaConf.select(cfg, key), rule) for key, rule in RANGES.items()]
    checks += [(f"data.sources.{k}.share", s.share, POSITIVE) for k, s in cfg.data.sources.items()]
    for key, value, rule in checks:
        if key in AUTO and value == "auto":
            continue
        if isinstance(value, str) or (value is not None and not _in_range(value, rule)):
            also = ' or "auto"' if key in AUTO else ""
            return f"{key} = {value!r}: must be {rule}{also}"
    if cfg.bn_momentum > 1:
        return f"bn_momentum = {cfg.bn_momentum!r}: must be in [0, 1] (0: official)"
    for key in LIMITS:
        if (value := OmegaConf.select(cfg, key)) is not None and value < -1:
            return f"{key} = {value!r}: must be >= 0 (or -1: no limit)"
    devices = cfg.trainer.devices
    devices = OmegaConf.to_container(devices) if OmegaConf.is_config(devices) else devices
    if not devices_ok(devices):
        return f"trainer.devices = {devices!r}: {DEVICES}"
    if cfg.trainer.precision not in (*PRECISIONS, "auto"):
        return f"trainer.precision = {cfg.trainer.precision!r}: auto or one of {' | '.join(PRECISIONS)}"
    if cfg.channels_last not in ("auto", True, False):
        return f"channels_last = {cfg.channels_last!r}: one of auto | true | false"
    if cfg.logger.offline not in ("auto", True, False):
        return f"logger.offline = {cfg.logger.offline!r}: one of auto | true | false"
    return None
