"""Start-up checks: what would fail later, refused before any model or dataset is built.

``check_startup`` runs them all, each a ``ConfigError`` naming the key, the folder or the file:
the monitored metric, a resume's config against the run's saved one, the run folder (writable,
room for the checkpoints: ``experiments.run_folder``) and the data's completeness
(``experiments.data_complete``).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from deephar.checkpoint import config_path
from deephar.tasks import ActionModule, JointModule, Pose2D3DModule
from deephar.tasks.base import TaskModule
from experiments.config import ConfigError, network_config
from experiments.data_complete import check_data_complete
from experiments.run_folder import (
    check_free_space,
    check_writable,
    resume_path,
    run_dir,
    stages,
)

TASK_MODULES: dict[str, type[TaskModule]] = {
    "pose": Pose2D3DModule,
    "action": ActionModule,
    "joint": JointModule,
}


# ---- resume: what a resumed run must share with the run it continues (its config.yaml) ----
#: the epoch's length and order, the carved split, the network: changed, the resumed run is not
#: the saved one continued (its epoch ended at the saved step with another batch size)
RESUME_KEYS = (
    "task",
    "seed",
    "model",
    "data.batch_size",
    "data.steps_per_epoch",
    "data.train",
    "data.augment",
    "data.val_fraction",
    "data.split_seed",
    "data.folds",
    "data.fold",
    "trainer.accumulate_grad_batches",
)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def resume_changes(saved: DictConfig, cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """{key: (saved, now)} of the ``RESUME_KEYS`` (and the sources' ``share``) that differ between
    a run's saved config and ``cfg``, less those ``cfg.resume_allow_changes`` names (a key or a
    prefix: ``model`` allows every ``model.*``)."""
    keys = list(RESUME_KEYS) + [
        f"data.sources.{k}.share" for k in sorted(set(saved.data.sources) | set(cfg.data.sources))
    ]
    allowed = tuple(cfg.resume_allow_changes)
    changes = {}
    for key in keys:
        before, now = _plain(OmegaConf.select(saved, key)), _plain(OmegaConf.select(cfg, key))
        if before != now and not any(key == a or key.startswith(f"{a}.") for a in allowed):
            if isinstance(before, dict) and isinstance(now, dict):  # name the inner keys
                changes |= {
                    f"{key}.{k}": (before.get(k), now.get(k))
                    for k in before | now
                    if before.get(k) != now.get(k) and f"{key}.{k}" not in allowed
                }
            else:
                changes[key] = (before, now)
    return changes


def check_startup(cfg: DictConfig) -> None:
    """Every start-up check, in the order a user fixes them."""
    check_monitor(cfg)
    check_resume_config(cfg)
    check_writable(cfg)
    check_free_space(cfg)
    check_data_complete(cfg)


def check_monitor(cfg: DictConfig) -> None:
    """``optim.monitor`` must be a metric the task logs (it was found missing after an epoch)."""
    if not cfg.data.val:
        return  # nothing validates: nothing is monitored
    names = TASK_MODULES[cfg.task].val_metrics(network_config(cfg))
    if cfg.optim.monitor not in names:
        raise ConfigError(
            f"optim.monitor = {cfg.optim.monitor!r}: the {cfg.task} task logs {', '.join(names)}"
        )


def check_resume_config(cfg: DictConfig) -> None:
    """A resumed run must be the saved one continued: the ``RESUME_KEYS`` that differ from its
    ``config.yaml`` are refused, named, unless ``resume_allow_changes`` lists them."""
    ckpt = next((p for s in stages(cfg) if (p := resume_path(cfg, s))), None)
    if ckpt is None:
        return
    saved = run_dir(cfg) / "config.yaml" if cfg.resume == "auto" else config_path(ckpt)
    if saved is None or not saved.is_file():
        return
    if changes := resume_changes(OmegaConf.load(saved), cfg):
        listed = ", ".join(f"{k} = {now!r} (saved: {was!r})" for k, (was, now) in changes.items())
        keys = ",".join(changes)
        raise ConfigError(
            f"resume from {ckpt}: {listed} differ from the run's {saved}; rerun with "
            f"the saved values, or allow it: resume_allow_changes=[{keys}]"
        )
