"""The task module of a config: the one place ``experiments.train`` (fitting, testing) and
``experiments.evaluate`` (its "run" protocol: the training's own test step) build it from."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from deephar.models.multitask import DeepHAR
from deephar.tasks import ActionModule, JointModule, Pose2D3DModule
from deephar.tasks.base import OptimSettings, TaskModule
from experiments.data import pckh_exclude
from experiments.training_defaults import resolve_training_defaults


def build_module(
    cfg: DictConfig, net: DeepHAR, stage: str = "main", lr: float | None = None
) -> TaskModule:
    """The task module of ``cfg`` around ``net``; stage "finetune" unfreezes the pose network."""
    optim = OptimSettings(**OmegaConf.to_container(cfg.optim, resolve=True, enum_to_str=True))
    if lr is not None:
        optim.lr = lr
    channels_last = bool(resolve_training_defaults(cfg, verbose=False).channels_last)
    common = dict(optim=optim, channels_last=channels_last, compile=cfg.compile)
    frozen = cfg.freeze_pose and stage != "finetune"
    exclude = pckh_exclude(cfg.data.layout)
    if cfg.task == "pose":
        return Pose2D3DModule(
            net,
            visibility_weight=cfg.loss.visibility_weight,
            pckh_exclude=exclude,
            pose_loss=str(cfg.loss.pose),
            visibility_joints=str(cfg.loss.visibility_joints),
            keras_bce=cfg.loss.keras_bce,
            **common,
        )
    if cfg.task == "action":
        return ActionModule(
            net,
            freeze_pose=frozen,
            video_reduction=str(cfg.eval.video_reduction),
            label_smoothing=cfg.loss.label_smoothing,
            **common,
        )
    return JointModule(
        net,
        freeze_pose=frozen,
        pose_weight=cfg.loss.pose_weight,
        action_weight=cfg.loss.action_weight,
        visibility_weight=cfg.loss.visibility_weight,
        pckh_exclude=exclude,
        video_reduction=str(cfg.eval.video_reduction),
        pose_loss=str(cfg.loss.pose),
        visibility_joints=str(cfg.loss.visibility_joints),
        keras_bce=cfg.loss.keras_bce,
        label_smoothing=cfg.loss.label_smoothing,
        **common,
    )
