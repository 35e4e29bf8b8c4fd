"""What a run needs beyond its config's types and ranges, checked once before it starts.

``validate``: a task its training sources agree with, listed val / test sources that exist, a
network that fits the task, and the data roots on disk (``train.run`` calls it; the types,
choices and ranges were checked when the config was loaded).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from experiments.config import ConfigError, training_sources


def validate(cfg: DictConfig, check_roots: bool = True) -> None:
    """What a run needs beyond types: sources, listed val/test sources that exist, training
    sources of the task's stages, a network that fits the task, and data roots on disk."""
    if not cfg.data.sources:
        raise ConfigError("data.sources is empty: name at least one dataset")
    for part in ("train", "val", "test"):
        if unknown := [k for k in cfg.data[part] if k not in cfg.data.sources]:
            raise ConfigError(f"data.{part} names {unknown}, not in data.sources")
    stages = {str(cfg.data.sources[k].stage) for k in training_sources(cfg)}
    task = str(cfg.task)
    wanted = {"pose": {"pose"}, "action": {"action"}, "joint": {"pose", "action"}}[task]
    if stages != wanted:
        raise ConfigError(
            f"task {task!r} trains on {sorted(wanted)} sources, the config has {sorted(stages)}"
        )
    if cfg.task != "pose" and cfg.model.num_actions <= 0:
        raise ConfigError(f"task {task!r} needs model.num_actions > 0")
    if check_roots:
        check_data_roots(cfg)


def check_data_roots(cfg: DictConfig) -> None:
    """Every source used must have its root on disk (checked before training starts)."""
    used = set(training_sources(cfg)) | set(cfg.data.val) | set(cfg.data.test)
    for key in sorted(used):
        source = cfg.data.sources[key]
        if source.prepared and not Path(source.prepared).is_dir():
            raise ConfigError(f"data.sources.{key}.prepared = {source.prepared!r} not found")
        if source.prepared:  # a prepared folder replaces the download
            continue
        if not source.root:
            raise ConfigError(
                f"data.sources.{key}.root is not set ({source.dataset}): pass the dataset folder, "
                f"e.g. data.root=/path/to/{source.dataset}"
            )
        if not Path(source.root).exists():
            raise ConfigError(
                f"data root not found: data.sources.{key}.root = {source.root!r} "
                f"({source.dataset}); set data.root (or data.mpii_root) to the dataset folder"
            )
