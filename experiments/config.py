"""One config loader: default YAML + experiment YAML(s) + command-line dotlist, type-checked.

``load_config("penn", ["trainer.devices=4", "data.root=/data/penn"])`` merges the structured
schema below (the defaults, each written and commented once, here), ``configs/default.yaml``
(site-wide, empty as shipped), ``configs/penn.yaml`` (after the experiment it names as
``base:``, if any) and the overrides in one ``OmegaConf.merge``, so an unknown key or a wrongly
typed value, a name out of its choices (``experiments.config_choices``) or a number out of its
range (``experiments.config_ranges``) fails in one line naming the key, before training starts.
``experiments.config_checks.validate`` then checks what a run needs (sources, data roots).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from deephar.config import NetworkConfig
from deephar.tasks.base import OptimSettings
from experiments import config_choices as choice
from experiments.config_errors import ConfigError, merge_error, read_yaml
from experiments.config_ranges import range_problem

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class OptimConfig(OptimSettings):
    """``deephar.tasks.base.OptimSettings`` with its names typed (``build_module`` passes them on)."""

    name: choice.Optimizer = choice.Optimizer.rmsprop
    schedule: choice.Schedule = choice.Schedule.cosine
    monitor_mode: choice.MonitorMode = choice.MonitorMode.min
    scale_lr: choice.LrScaling = choice.LrScaling.none


@dataclass
class SourceConfig:
    """One dataset feeding the run (reader keyword arguments live in the ``*options``)."""

    dataset: choice.Dataset = MISSING
    root: str = ""  # the dataset folder (usually ${data.root})
    share: float = 1.0  # weight of this source in each training batch (MixedRatioDataModule)
    stage: choice.Stage = choice.Stage.pose  # pose: still images | action: clips or provided poses
    prepared: str = ""  # h36m | ntu: folder of `python -m datamodules.prepare` (read, not root)
    streaming: str = ""  # h36m | ntu: LitData chunks of the training split (path or s3://…)
    options: dict[str, Any] = field(default_factory=dict)  # reader kwargs for every split
    train_options: dict[str, Any] = field(default_factory=dict)  # … the training split only
    val_options: dict[str, Any] = field(default_factory=dict)  # … validation only
    test_options: dict[str, Any] = field(default_factory=dict)  # … test only


@dataclass
class DataConfig:
    layout: choice.Layout = choice.Layout.pa16j  # merged joint layout (datamodules.layouts)
    root: str = ""  # the main dataset root (Makefile: data.root=$(PENN_ROOT) …)
    mpii_root: str = ""  # MPII beside another dataset (h36m: data.mpii_root=$(MPII_ROOT))
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    train: list[str] = field(default_factory=list)  # sources trained on (empty: all)
    val: list[str] = field(default_factory=list)  # sources validated (validation split)
    test: list[str] = field(default_factory=list)  # sources tested at the end (test split)
    batch_size: int = 24  # per device (paper: 24), split among the training sources by `share`
    eval_batch_size: int = 8
    steps_per_epoch: int = 1000  # 0: the official max over sources of ceil(N / count)
    num_workers: Any = "auto"  # per device; auto: its share of the cores less one (printed)
    augment: bool = True  # training augmentation (evaluation never augments)
    limit_val: int = 0  # validate on N evenly spaced samples per source (0: all; test: all)
    val_fraction: float = 0.1  # penn / ntu: share of the training videos (NTU X-Sub: subjects)
    split_seed: int = 0  # held out as their validation split (datamodules.splits), this seed
    folds: int = 0  # >= 2: validate on fold `fold` of a grouped k-fold (experiments.crossval)
    fold: int = 0
    allow_partial: bool = False  # train on a dataset folder with part of a split (start-up check)


@dataclass
class LossConfig:
    visibility_weight: float = 0.01  # official weight of the visibility BCE
    pose: choice.PoseLoss = choice.PoseLoss.l1l2  # pose task (l1l2bincross: official MPII)
    visibility_joints: choice.VisibilityJoints = choice.VisibilityJoints.annotated  # all: official
    keras_bce: bool = False  # pose task: visibility BCE on probabilities clipped at 1e-7 (official)
    pose_weight: float = 1.0  # joint task: pose loss weight
    action_weight: float = 1.0  # joint task: action loss weight
    label_smoothing: float = 0.0  # action task: ε of the cross-entropy's smoothed targets


@dataclass
class ProtocolConfig:
    """The test-time protocol of ``experiments.evaluate`` (``eval.*``; also ``evaluate.Protocol``)."""

    protocol: str = ""  # comma list: run (the run's own test) | single-crop | multi-crop |
    # single-clip | multi-clip | official; "": run unless crops / clips name others
    crops: str = ""  # MPII / H36M, also: single | multi | both ("": none beyond ``protocol``)
    displacement: int = -1  # multi-crop shift in crop pixels; -1: eval.crop_shift at this size
    clips: str = ""  # Penn / NTU, also: single (middle clip) | multi (every T/2) | both | ""
    clip_flip: bool = False  # single- / multi-clip: each clip with and without flip
    limit: int = 0  # first N samples (pose) / videos' clips (action) per source; 0 = all
    out: str = ""  # output folder; "" = <out_dir>/<name>/eval

    def runs(self, kind: str) -> list[str]:
        """The runs of ``kind`` ("crops" | "clips"): [], ["single"], ["multi"] or both."""
        choice = getattr(self, kind)
        if choice not in ("", "single", "multi", "both"):
            raise ConfigError(f"eval.{kind} = {choice!r}: single | multi | both")
        return ["single", "multi"] if choice == "both" else [choice] if choice else []


@dataclass
class EvalConfig(ProtocolConfig):
    video_reduction: choice.Reduction = choice.Reduction.mean  # prod: official Penn
    crop_shift: float = 8.0  # multi-crop shift in pixels of a 256² input, scaled with the input
    fast: bool = True  # evaluate / predict / demo: deephar.models.inference.for_inference
    device: str = "auto"  # evaluate / predict: auto (CUDA when there is one) | cpu | cuda
    allow_missing: bool = False  # unreadable val/test samples: reported, not scored; exit 0
    ckpt: str = ""  # evaluate / predict: the checkpoint run (Lightning, deephar.convert .pt, .h5)


@dataclass
class PredictConfig:
    """``experiments.predict`` (``predict.*``; its network: ``eval.ckpt``, ``eval.fast``)."""

    keras_model: str = ""  # an official .h5's preset: mpii | h36m | penn | ntu
    decode_size: int = 480  # frames decoded at max(H, W) <= this (0: full size)
    threshold: float = 0.5  # visibility of the joints that box the person


@dataclass
class InitConfig:
    ckpt: str = ""  # a checkpoint of any task module or a deephar.convert .pt file
    keras_h5: str = ""  # official Keras weights, converted on load
    # a file with fewer pose-ensemble members than model.pose_members: refuse (names them) | copy
    members: choice.InitMembers = choice.InitMembers.refuse


@dataclass
class FinetuneConfig:
    """Fine-tuning (the paper's last stage): everything trainable, ``optim.lr`` ÷ ``lr_divisor``,
    ``epochs`` epochs, from the network the first stage ended with (``only``: from ``init.*``)."""

    enabled: bool = False  # after the first stage, unfreeze the pose net and go on
    epochs: int = 5
    lr_divisor: float = 10.0  # fine-tuning lr = optim.lr / lr_divisor (paper: ÷ 10)
    only: bool = False  # skip the first stage: fine-tune the network of init.ckpt directly


@dataclass
class TrainerConfig:
    """Passed to ``pytorch_lightning.Trainer`` as they are."""

    accelerator: choice.Accelerator = choice.Accelerator.auto
    devices: Any = "auto"
    num_nodes: int = 1  # multi-node: launch with torchrun / SLURM, nothing else changes
    strategy: str = "auto"  # auto | ddp: DDP over several devices (experiments.distributed)
    sync_batchnorm: bool = False  # DDP: BN statistics over the global batch (SyncBatchNorm)
    precision: str = "auto"  # or Lightning's names; auto: experiments.training_defaults
    max_epochs: int = 100
    max_steps: int = -1
    gradient_clip_val: float = 1.0
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 50
    limit_val_batches: Any = 1.0
    limit_test_batches: Any = 1.0
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    deterministic: bool = False


@dataclass
class LoggerConfig:
    kind: choice.LoggerKind = choice.LoggerKind.wandb
    project: str = "deephar-lightning"
    group: str = ""  # W&B group: the rows of an ablation share one
    offline: bool | str = "auto"  # true | false | auto: offline unless logged in (`wandb sync`)


@dataclass
class ExperimentConfig:
    name: str = "???"  # run name: checkpoints/<name>/
    task: choice.Task = choice.Task.pose
    seed: int = 0
    out_dir: str = "checkpoints"
    resume: str = ""  # a checkpoint path, or auto: <out_dir>/<name>/last.ckpt when present
    resume_allow_changes: list[str] = field(default_factory=list)  # RESUME_KEYS resume may change
    freeze_pose: bool = True  # action / joint: pose network frozen in the first stage
    bn_momentum: float = 0.0  # BatchNorm momentum for short runs (0: official 0.01)
    channels_last: Any = "auto"  # true | false | auto: experiments.training_defaults
    compile: bool = False  # torch.compile of the pose network and the action head
    cudnn_benchmark: bool = True  # cuDNN picks the fastest kernels for the (fixed) input sizes
    threads: int = 0  # torch intra-op threads (0: torch's default, one per core)
    model: NetworkConfig = field(default_factory=NetworkConfig)  # official MPII 2D (MPII_2D)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    init: InitConfig = field(default_factory=InitConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def _experiment_file(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"no experiment config {name!r} (looked for {path}); known: {known()}")
    return path


def known() -> list[str]:
    """The experiment configs shipped in ``experiments/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "default")


def _layers(name: str, seen: tuple[str, ...] = ()) -> list[DictConfig]:
    """The experiment file after the chain of files it names as ``base:``."""
    if name in seen:
        raise ConfigError(f"config {name!r}: circular `base:` chain {seen + (name,)}")
    layer = read_yaml(_experiment_file(name))
    base = layer.pop("base", None)
    return (_layers(str(base), seen + (name,)) if base else []) + [layer]


def merged(origin: str, layers: Sequence[DictConfig]) -> DictConfig:
    """schema ← ``layers``, resolved, its ranges checked (``experiments.config_ranges``)."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), *layers)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise merge_error(origin, err) from None
    if problem := range_problem(cfg):
        raise ConfigError(problem)
    return cfg


def load_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Merge schema ← default.yaml ← [base …] ← <name>.yaml ← dotlist; fail on unknown keys,
    wrong types, choices and ranges, each in one line naming the key."""
    layers = [read_yaml(CONFIG_DIR / "default.yaml"), *_layers(name)]
    return merged(name, [*layers, dotlist(name, overrides)])


def dotlist(origin: str, overrides: Sequence[str]) -> DictConfig:
    """The command line's ``key=value`` overrides as a config layer."""
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise merge_error(origin, err) from None


# ---- evaluate / predict: their options are config keys; the short forms of their command lines ----
EVALUATE_KEYS = {
    k: f"eval.{k}" for k in (*(f.name for f in fields(ProtocolConfig)), "ckpt", "fast")
}
EVALUATE_KEYS["reduction"] = "eval.video_reduction"
PREDICT_KEYS = {"ckpt": "eval.ckpt", "fast": "eval.fast", "device": "eval.device"} | {
    k: f"predict.{k}" for k in ("keras_model", "decode_size", "threshold")
}
PREDICT_SECTIONS = ("eval", "predict")  # the keys predict reads (it has no experiment config)


def expand_short_keys(args: Sequence[str], short: Mapping[str, str]) -> list[str]:
    """``key=value`` arguments with every short key of ``short`` written in full
    (``crops=multi`` → ``eval.crops=multi``); an argument without ``=`` is a ConfigError."""
    if bad := [a for a in args if "=" not in a]:
        raise ConfigError(f"arguments must be key=value: {bad}")
    pairs = [a.split("=", 1) for a in args]
    return [f"{short.get(key, key)}={value}" for key, value in pairs]


def load_predict_config(overrides: Sequence[str] = ()) -> DictConfig:
    """schema ← default.yaml ← dotlist of ``eval.*`` / ``predict.*`` keys (predict runs one
    checkpoint on one file: any other key would be silently unused, so it is an error)."""
    if bad := [o for o in overrides if o.split("=", 1)[0].split(".")[0] not in PREDICT_SECTIONS]:
        raise ConfigError(f"predict takes eval.* and predict.* keys only, got {bad}")
    default = read_yaml(CONFIG_DIR / "default.yaml")
    return merged("predict", [default, dotlist("predict", overrides)])


def training_sources(cfg: DictConfig) -> list[str]:
    """The sources trained on: ``data.train``, or every source when it is empty."""
    return list(cfg.data.train) or list(cfg.data.sources)


def network_config(cfg: DictConfig) -> NetworkConfig:
    """The network of ``cfg.model`` as the library's dataclass."""
    return NetworkConfig(**OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True))
