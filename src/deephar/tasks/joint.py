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
from deephar.tasks.action import ActionMetrics, action_forward
from deephar.tasks.base import (
    OptimSettings,
    TaskModule,
    attach_action_head,
    is_clip_batch,
)
from deephar.tasks.pose import PoseMetrics, pose_step


class JointModule(TaskModule):
    """Pose + action multitask training on one network (one backbone).

    net: ``build_model(cfg)`` with an action head; pose_weight / action_weight: loss weights;
    other arguments as in ``Pose2D3DModule`` and ``ActionModule``. Logs ``train/loss``,
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
    ) -> None:
        super().__init__(net, optim, channels_last, compile)
        attach_action_head(net, "JointModule", freeze_pose)
        self.pose_weight, self.action_weight = pose_weight, action_weight
        self.visibility_weight = visibility_weight
        cfg = net.cfg
        for stage in ("val", "test"):
            setattr(self, f"{stage}_pose", PoseMetrics(cfg.num_joints, pckh_exclude))
            setattr(
                self,
                f"{stage}_action",
                ActionMetrics(
                    cfg.action_blocks, cfg.num_actions, video_reduction, cfg.pose_members
                ),
            )
        self.save_settings(
            freeze_pose=freeze_pose,
            pose_weight=pose_weight,
            action_weight=action_weight,
            visibility_weight=visibility_weight,
            pckh_exclude=list(pckh_exclude),
            video_reduction=video_reduction,
        )

    def _metrics(self, stage: str) -> list[nn.Module]:
        return [getattr(self, f"{stage}_pose"), getattr(self, f"{stage}_action")]

    @staticmethod
    def scorers(cfg: NetworkConfig) -> list[nn.Module]:
        return [
            PoseMetrics(cfg.num_joints),
            ActionMetrics(cfg.action_blocks, cfg.num_actions, members=cfg.pose_members),
        ]

    def _pose_part(self, batch: Mapping[str, Any], stage: str):
        output, loss, parts = pose_step(
            self.net, self.to_input(batch["image"]), batch, self.visibility_weight
        )
        if stage != "train":
            getattr(self, f"{stage}_pose").update(output, batch)
        return loss, parts

    def _action_part(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        output = action_forward(self.net, batch)
        if stage != "train":
            getattr(self, f"{stage}_action").update(output, batch)
        return action_loss(output, batch["action"])

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
