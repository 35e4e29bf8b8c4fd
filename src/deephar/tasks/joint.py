"""JointModule: pose and action losses in the same step (the paper's multitask training).

Training batches come from ``MixedRatioDataModule(groups={"pose": […], "action": […]})``:
``{"pose": still-image batch, "action": clip batch}``. The loss is
``pose_weight``·pose loss (official, every block) + ``action_weight``·action CE (all 9 outputs).
With ``freeze_pose=True`` (action training on a frozen pose network) the pose batch is skipped;
the fine-tuning stage unfreezes everything (``freeze_pose=False``, lr ÷ 10).
Validation / test loaders are plain: still-image batches get pose metrics, clip (or provided
pose) batches action metrics.

Alphabet: B batch, T frames, J joints, D 2|3, A actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from deephar.config import NetworkConfig
from deephar.losses import action_loss
from deephar.models.multitask import DeepHAR
from deephar.tasks.action import ActionModule, action_forward
from deephar.tasks.base import (
    OptimSettings,
    TaskModule,
    attach_action_head,
    is_clip_batch,
)
from deephar.tasks.pose import Pose2D3DModule, check_pose_loss, module_pose_step


class JointModule(TaskModule):
    """Pose + action multitask training on one network (one backbone).

    net: ``build_model(cfg)`` with an action head; pose_weight / action_weight: loss weights;
    other arguments as in ``Pose2D3DModule`` (``pose_loss``, ``visibility_joints``,
    ``keras_bce``: the pose loss) and ``ActionModule`` (``label_smoothing``: the action loss). Logs ``train/loss``,
    ``train/pose``, ``train/action``, the pose metrics (``val/pckh@0.5`` …) and the action metrics
    (``val/acc`` …) of whatever the validation loaders hold.
    """

    def __init__(
        self,
        net: DeepHAR,
        optim: OptimSettings | Mapping[str, Any] | None = None,
        freeze_pose: bool = False,
        pose_weight: float = 1.0,
        action_weight: float = 1.0,
        visibility_weight: float = 0.01,
        pckh_exclude: Sequence[int] = (),
        video_reduction: str = "mean",
        channels_last: bool = False,
        compile: bool = False,
        pose_loss: str = "l1l2",
        visibility_joints: str = "annotated",
        keras_bce: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(net, optim, channels_last, compile)
        attach_action_head(net, "JointModule", freeze_pose)
        check_pose_loss(pose_loss, visibility_joints)
        self.pose_weight, self.action_weight = pose_weight, action_weight
        self.visibility_weight = visibility_weight
        self.pose_loss, self.visibility_joints = pose_loss, visibility_joints
        self.keras_bce, self.label_smoothing = keras_bce, label_smoothing
        self.attach_metrics(pckh_exclude=pckh_exclude, video_reduction=video_reduction)
        self.save_settings(
            freeze_pose=freeze_pose,
            pose_weight=pose_weight,
            action_weight=action_weight,
            visibility_weight=visibility_weight,
            pckh_exclude=list(pckh_exclude),
            video_reduction=video_reduction,
            pose_loss=pose_loss,
            visibility_joints=visibility_joints,
            keras_bce=keras_bce,
            label_smoothing=label_smoothing,
        )

    @classmethod
    def build_metrics(
        cls,
        cfg: NetworkConfig,
        pckh_exclude: Sequence[int] = (),
        video_reduction: str = "mean",
        **options: Any,
    ) -> dict[str, nn.Module]:
        """The pose task's metrics and the action task's, as each builds them."""
        pose = Pose2D3DModule.build_metrics(cfg, pckh_exclude)
        return pose | ActionModule.build_metrics(cfg, video_reduction)

    def _pose_part(self, batch: Mapping[str, Any], stage: str):
        output, loss, parts = module_pose_step(self, batch)
        if stage != "train":
            getattr(self, f"{stage}_pose").update(output, batch)
        return loss, parts

    def _action_part(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        output = action_forward(self.net, batch)
        if stage != "train":
            getattr(self, f"{stage}_action").update(output, batch)
        return action_loss(output, batch["action"], self.label_smoothing)

    def _shared_step(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        if stage == "train" and "pose" in batch and "action" in batch:
            action = self._action_part(batch["action"], stage)
            parts = {"action": action.detach()}
            loss = self.action_weight * action
            if not self.net.pose_frozen:
                pose, pose_parts = self._pose_part(batch["pose"], stage)
                parts |= {"pose": pose.detach(), "pose_last": pose_parts["pose_last"]}
                loss = loss + self.pose_weight * pose
            size = len(batch["action"]["action"]) + len(batch["pose"]["image"])
        elif is_clip_batch(batch):
            loss, parts, size = self._action_part(batch, stage), {}, len(batch["action"])
        else:
            loss, parts = self._pose_part(batch, stage)
            size = len(batch["image"])
        self.log_loss(stage, loss, parts, size)
        return loss
