"""One config loader: default YAML + experiment YAML(s) + command-line dotlist, type-checked.

``load_config("penn", ["trainer.devices=4", "data.root=/data/penn"])`` merges the structured
schema below, ``configs/default.yaml``, ``configs/penn.yaml`` (after the experiment it names as
``base:``, if any) and the overrides in one ``OmegaConf.merge``, so an unknown key or a wrongly
typed value fails before training starts, naming the key. ``validate`` then checks what a run
needs (task, sources, data roots on disk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from datamodules.layouts import LAYOUTS
from deephar.config import NetworkConfig
from deephar.losses import POSE_LOSSES, VISIBILITY_JOINTS
from deephar.tasks.base import OptimSettings
from deephar.tasks.schedule import LR_SCALING, SCHEDULES

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DATASETS = ("mpii", "h36m", "penn", "ntu")
TASKS = ("pose", "action", "joint")


@dataclass
class SourceConfig:
    """One dataset feeding the run (reader keyword arguments live in the ``*options``)."""

    dataset: str = "???"  # mpii | h36m | penn | ntu
    root: str = ""  # the dataset folder (usually ${data.root})
    share: float = 1.0  # weight of this source in each training batch (MixedRatioDataModule)
    stage: str = "pose"  # pose: still images | action: clips or provided poses
    prepared: str = ""  # h36m | ntu: folder of `python -m datamodules.prepare` (read, not root)
    streaming: str = ""  # h36m | ntu: LitData chunks of the training split (path or s3://…)
    options: dict[str, Any] = field(default_factory=dict)  # reader kwargs for every split
    train_options: dict[str, Any] = field(default_factory=dict)  # … the training split only
    val_options: dict[str, Any] = field(default_factory=dict)  # … validation only
    test_options: dict[str, Any] = field(default_factory=dict)  # … test only


@dataclass
class DataConfig:
    layout: str = "pa16j"  # merged joint layout (datamodules.layouts)
    root: str = ""  # the main dataset root (Makefile: data.root=$(PENN_ROOT) …)
    mpii_root: str = ""  # MPII beside another dataset (h36m: data.mpii_root=$(MPII_ROOT))
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    train: list[str] = field(default_factory=list)  # sources trained on (empty: all)
    val: list[str] = field(default_factory=list)  # sources validated (validation split)
    test: list[str] = field(default_factory=list)  # sources tested at the end (test split)
    batch_size: int = 24  # per device, split among the training sources by `share`
    eval_batch_size: int = 8
    steps_per_epoch: int = 1000  # 0: the official max over sources of ceil(N / count)
    num_workers: Any = (
        "auto"  # per device; auto: its share of the cores, less one (experiments.data)
    )
    augment: bool = True  # training augmentation (evaluation never augments)
    limit_val: int = 0  # validate on N evenly spaced samples per source (0: all; test: all)
    val_fraction: float = 0.1  # penn / ntu: share of the training videos (NTU X-Sub: subjects)
    split_seed: int = 0  # held out as their validation split (datamodules.splits), this seed
    folds: int = 0  # >= 2: validate on fold `fold` of a grouped k-fold (experiments.crossval)
    fold: int = 0


@dataclass
class LossConfig:
    visibility_weight: float = 0.01  # official weight of the visibility BCE
    pose: str = "l1l2"  # pose task: l1l2 | l1l2bincross (official MPII script) | l1 | l2
    visibility_joints: str = "annotated"  # pose task: annotated | all (official: target 0 if not)
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
    video_reduction: str = "mean"  # multi-clip scores: mean of softmax | prod (official Penn)
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

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1  # multi-node: launch with torchrun / SLURM, nothing else changes
    strategy: str = "auto"  # auto | ddp: DDP over several devices (experiments.distributed)
    sync_batchnorm: bool = False  # DDP: BN statistics over the global batch (SyncBatchNorm)
    precision: str = "32-true"  # bf16-mixed | 16-mixed
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
    kind: str = "wandb"  # wandb | csv | tensorboard | none
    project: str = "deephar-lightning"
    group: str = ""  # W&B group: the rows of an ablation share one
    offline: bool | str = "auto"  # true | false | auto: offline unless logged in (`wandb sync`)


@dataclass
class ExperimentConfig:
    name: str = "???"  # run name: checkpoints/<name>/
    task: str = "pose"  # pose | action | joint
    seed: int = 0
    out_dir: str = "checkpoints"
    resume: str = ""  # a checkpoint path, or auto: <out_dir>/<name>/last.ckpt when present
    resume_allow_changes: list[str] = field(default_factory=list)  # RESUME_KEYS resume may change
    freeze_pose: bool = True  # action / joint: pose network frozen in the first stage
    bn_momentum: float = 0.0  # BatchNorm momentum for short runs (0: official 0.01)
    channels_last: bool = False
    compile: bool = False  # torch.compile of the pose network and the action head
    cudnn_benchmark: bool = True  # cuDNN picks the fastest kernels for the (fixed) input sizes
    threads: int = 0  # torch intra-op threads (0: torch's default, one per core)
    model: NetworkConfig = field(default_factory=NetworkConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimSettings = field(default_factory=OptimSettings)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
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
        raise ConfigError(f"no experiment config {name!r} (looked for {path}); known: {known()}")
    return path


def known() -> list[str]:
    """The experiment configs shipped in ``experiments/configs``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "default")


def _layers(name: str, seen: tuple[str, ...] = ()) -> list[DictConfig]:
    """The experiment file after the chain of files it names as ``base:``."""
    if name in seen:
        raise ConfigError(f"config {name!r}: circular `base:` chain {seen + (name,)}")
    layer = OmegaConf.load(_experiment_file(name))
    base = layer.pop("base", None)
    return (_layers(str(base), seen + (name,)) if base else []) + [layer]


def load_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Merge schema ← default.yaml ← [base …] ← <name>.yaml ← dotlist; fail on unknown keys."""
    schema = OmegaConf.structured(ExperimentConfig)
    layers = [OmegaConf.load(CONFIG_DIR / "default.yaml"), *_layers(name)]
    try:
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.merge(schema, *layers)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config {name!r}: {getattr(err, 'msg', None) or err}") from err
    check_ranges(cfg)
    return cfg


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
    try:
        dotlist = OmegaConf.from_dotlist(list(overrides))
        cfg = OmegaConf.merge(
            OmegaConf.structured(ExperimentConfig),
            OmegaConf.load(CONFIG_DIR / "default.yaml"),
            dotlist,
        )
    except OmegaConfBaseException as err:
        raise ConfigError(f"predict: {getattr(err, 'msg', None) or err}") from err
    return cfg


def validate(cfg: DictConfig, check_roots: bool = True) -> None:
    """What a run needs beyond types: a known task, known datasets and stages, listed val/test
    sources that exist, a network that fits the task, and data roots on disk."""
    check_ranges(cfg)
    if cfg.task not in TASKS:
        raise ConfigError(f"task = {cfg.task!r}: choose one of {TASKS}")
    if not cfg.data.sources:
        raise ConfigError("data.sources is empty: name at least one dataset")
    for key, source in cfg.data.sources.items():
        if source.dataset not in DATASETS:
            raise ConfigError(f"data.sources.{key}.dataset = {source.dataset!r}: one of {DATASETS}")
        if source.stage not in ("pose", "action"):
            raise ConfigError(f"data.sources.{key}.stage = {source.stage!r}: pose | action")
    for part in ("train", "val", "test"):
        if unknown := [k for k in cfg.data[part] if k not in cfg.data.sources]:
            raise ConfigError(f"data.{part} names {unknown}, not in data.sources")
    stages = {cfg.data.sources[k].stage for k in training_sources(cfg)}
    wanted = {"pose": {"pose"}, "action": {"action"}, "joint": {"pose", "action"}}[cfg.task]
    if stages != wanted:
        raise ConfigError(
            f"task {cfg.task!r} trains on {sorted(wanted)} sources, the config has {sorted(stages)}"
        )
    if cfg.task != "pose" and cfg.model.num_actions <= 0:
        raise ConfigError(f"task {cfg.task!r} needs model.num_actions > 0")
    if check_roots:
        check_data_roots(cfg)


def training_sources(cfg: DictConfig) -> list[str]:
    return list(cfg.data.train) or list(cfg.data.sources)


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


def network_config(cfg: DictConfig) -> NetworkConfig:
    return NetworkConfig(**OmegaConf.to_container(cfg.model, resolve=True))


# ---- numeric ranges: checked when the config is loaded, before any model or dataset exists ----
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
OPTIMIZERS = ("rmsprop", "sgd", "adam", "adamw")  # deephar.tasks.base.build_optimizer
# Lightning's precision names (lightning_fabric.connector._PRECISION_INPUT), the usual ones first
PRECISIONS = (
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "32",
    "16",
    "bf16",
    "64",
)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
CHOICES: dict[str, tuple[str, ...]] = {
    "loss.pose": POSE_LOSSES,
    "loss.visibility_joints": VISIBILITY_JOINTS,
    "optim.schedule": SCHEDULES,
    "optim.scale_lr": LR_SCALING,
    "optim.name": OPTIMIZERS,
    "optim.monitor_mode": ("min", "max"),
    "data.layout": tuple(LAYOUTS),
    "trainer.precision": PRECISIONS,
    "trainer.accelerator": ACCELERATORS,
    "logger.kind": ("wandb", "csv", "tensorboard", "none"),
    "logger.offline": ("auto", True, False),
    "eval.video_reduction": ("mean", "prod"),
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


def check_ranges(cfg: DictConfig) -> None:
    """Every numeric key of ``RANGES``, every key of ``CHOICES`` (and each source's ``share`` > 0,
    ``bn_momentum`` ≤ 1, the trainer's epoch / step limits ≥ -1, ``trainer.devices``) in range,
    else a ConfigError naming the key and what it may be."""
    checks = [(key, OmegaConf.select(cfg, key), rule) for key, rule in RANGES.items()]
    checks += [(f"data.sources.{k}.share", s.share, POSITIVE) for k, s in cfg.data.sources.items()]
    for key, value, rule in checks:
        if key in AUTO and value == "auto":
            continue
        if isinstance(value, str) or (value is not None and not _in_range(value, rule)):
            also = ' or "auto"' if key in AUTO else ""
            raise ConfigError(f"{key} = {value!r}: must be {rule}{also}")
    for key, choices in CHOICES.items():
        if (value := OmegaConf.select(cfg, key)) is not None and value not in choices:
            raise ConfigError(f"{key} = {value!r}: one of {' | '.join(map(str, choices))}")
    if cfg.bn_momentum > 1:
        raise ConfigError(f"bn_momentum = {cfg.bn_momentum!r}: must be in [0, 1] (0: official)")
    for key in LIMITS:
        if (value := OmegaConf.select(cfg, key)) is not None and value < -1:
            raise ConfigError(f"{key} = {value!r}: must be >= 0 (or -1: no limit)")
    devices = cfg.trainer.devices
    devices = OmegaConf.to_container(devices) if OmegaConf.is_config(devices) else devices
    if not devices_ok(devices):
        raise ConfigError(f"trainer.devices = {devices!r}: {DEVICES}")
