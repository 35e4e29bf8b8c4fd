"""One config loader: default YAML + experiment YAML + command-line dotlist, type-checked.

``load_config("penn", ["trainer.devices=4", "data.root=/data/penn"])`` merges
``configs/default.yaml``, ``configs/penn.yaml`` and the overrides over the structured schema below,
so an unknown key or a wrongly typed value fails before training starts, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from deephar.config import NetworkConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class SourceConfig:
    """One dataset feeding a task (reader arguments live in ``options``)."""

    dataset: str = "???"  # mpii | h36m | penn | ntu
    root: str = "???"
    share: float = 1.0  # fraction of each training batch (MixedRatioDataModule)
    stage: str = "pose"  # pose (still images) | action (clips) | both
    options: dict[str, Any] = field(default_factory=dict)  # extra reader keyword arguments


@dataclass
class DataConfig:
    layout: str = "pa16j"  # merged joint layout (datamodules.layouts)
    root: str = ""  # convenience root interpolated by experiment configs (${data.root})
    mpii_root: str = ""
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    val: list[str] = field(default_factory=list)  # sources evaluated on their validation split
    test: list[str] = field(default_factory=list)  # sources evaluated on their test split
    batch_size: int = 24
    eval_batch_size: int = 8
    steps_per_epoch: int = 1000
    num_workers: int = 4
    clip_length: int = 16
    augment: bool = True
    limit_eval: int = 0  # evaluate on the first N samples only (0: all)


@dataclass
class OptimConfig:
    name: str = "rmsprop"  # rmsprop | sgd | adam
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    plateau_factor: float = 0.2
    plateau_patience: int = 2
    monitor: str = "val/loss"
    monitor_mode: str = "min"


@dataclass
class LossConfig:
    visibility_weight: float = 0.01
    pose_weight: float = 1.0
    action_weight: float = 1.0


@dataclass
class InitConfig:
    ckpt: str = ""  # a Lightning checkpoint of any of the three task modules
    keras_h5: str = ""  # official Keras weights, converted on load
    keras_model: str = ""  # mpii | h36m | penn | ntu (layout of the .h5)


@dataclass
class FinetuneConfig:
    enabled: bool = False  # paper's stage 3: unfreeze the pose net, lr ÷ lr_divisor
    epochs: int = 5
    lr_divisor: float = 10.0


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 100
    max_steps: int = -1
    gradient_clip_val: float = 1.0
    log_every_n_steps: int = 50
    limit_val_batches: Any = 1.0
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    deterministic: bool = False


@dataclass
class LoggerConfig:
    kind: str = "wandb"  # wandb | csv | tensorboard | none
    project: str = "deephar-lightning"
    group: str = ""  # W&B group: ablation rows share one
    offline: Any = "auto"  # auto: offline unless logged in


@dataclass
class ExperimentConfig:
    name: str = "???"
    task: str = "pose"  # pose | action | joint
    seed: int = 0
    out_dir: str = "checkpoints"
    channels_last: bool = False
    compile: bool = False
    model: NetworkConfig = field(default_factory=NetworkConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    init: InitConfig = field(default_factory=InitConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


class ConfigError(ValueError):
    """A config that cannot run: unknown key, wrong type, missing data root."""


def _experiment_file(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "default")
        raise ConfigError(f"no experiment config {name!r} (looked for {path}); known: {known}")
    return path


def load_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Merge schema ← default.yaml ← <name>.yaml ← dotlist ``overrides``; fail on unknown keys."""
    schema = OmegaConf.structured(ExperimentConfig)
    layers = [OmegaConf.load(CONFIG_DIR / "default.yaml"), OmegaConf.load(_experiment_file(name))]
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    try:
        cfg = OmegaConf.merge(schema, *layers)
        OmegaConf.resolve(cfg)
    except (ConfigKeyError, ValidationError) as err:
        raise ConfigError(f"config {name!r}: {err.msg if hasattr(err, 'msg') else err}") from err
    return cfg


def check_data_roots(cfg: DictConfig) -> None:
    """Every configured source's root must exist on disk (checked before training starts)."""
    for key, source in cfg.data.sources.items():
        if OmegaConf.is_missing(source, "root") or not source.root:
            raise ConfigError(f"data.sources.{key}.root is not set (dataset {source.dataset})")
        if not Path(source.root).exists():
            raise ConfigError(
                f"data.sources.{key}.root = {source.root!r} does not exist "
                f"(dataset {source.dataset}; set it, e.g. data.root=/path/to/{source.dataset})"
            )


def network_config(cfg: DictConfig) -> NetworkConfig:
    return NetworkConfig(**OmegaConf.to_container(cfg.model, resolve=True))
