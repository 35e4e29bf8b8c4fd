"""Pose2D3DModule: 2D/3D pose regression on mixed still images (MPII 2D, Human3.6M 3D).

Loss (official): elastic net on every prediction block (z only where valid) + 0.01·visibility
BCE (``deephar.losses.pose_loss``). Metrics in the original frame: PCKh (MPII: pelvis and thorax
excluded) and PCK (other 2D data with a ``pck_ref``) in pixels through the sample's ``crop``;
MPJPE / PA-MPJPE in mm for 3D samples (those with a ``camera``).

Alphabet: B batch, J joints, D 2|3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from deephar.config import NetworkConfig
from deephar.losses import POSE_LOSSES, VISIBILITY_JOINTS, pose_loss
from deephar.metrics import MPJPE, PCK, PCKh, decode_pose_mm, decode_pose_px
from deephar.models.multitask import DeepHAR
from deephar.outputs import PoseOutput
from deephar.tasks.base import OptimSettings, TaskModule, updated_anywhere

PCKH_DATASETS = ("mpii",)  # datasets scored by PCKh (head-size reference); other 2D ones by PCK


class PoseMetrics(nn.Module):
    """PCKh / PCK / MPJPE of one stage: THE pose scorer (task modules and ``experiments.evaluate``).

    Each sample goes to the metrics its annotations allow: PCKh for ``PCKH_DATASETS`` samples with
    a ``pck_ref`` > 0, PCK for other samples with one; MPJPE (root-aligned at joint ``root``) for
    3D samples, those with a ``camera`` and a valid z. With ``num_groups`` > 0 the MPJPE is also
    kept per ``batch["action"]`` of the ``group_dataset`` samples (Human3.6M actions).

    update(pred (B, J, D) crop-normalised — or a ``PoseOutput``, scored by its last block — and
    the still-image batch); compute() → {"pckh@0.5", "pckh@0.2", "pckh_auc", "pck@…", "pck_auc",
    "mpjpe", "pa_mpjpe"} for the metrics that saw samples; ``details()`` adds per-joint PCK(h)
    and per-group MPJPE lists.
    """

    def __init__(
        self,
        num_joints: int,
        pckh_exclude: Sequence[int] = (),
        root: int = 0,
        num_groups: int = 0,
        group_dataset: str = "h36m",
    ):
        super().__init__()
        self.pckh = PCKh(num_joints, exclude=list(pckh_exclude))
        self.pck = PCK(num_joints, exclude=list(pckh_exclude))
        self.mpjpe = MPJPE(root=root, num_groups=num_groups)
        self.num_groups, self.group_dataset = num_groups, group_dataset

    def update(self, pred: Tensor | PoseOutput, batch: Mapping[str, Any]) -> None:
        pred = (pred.final if isinstance(pred, PoseOutput) else pred).detach().float()  # (B, J, D)
        is_pckh = pred.new_tensor([d in PCKH_DATASETS for d in batch["dataset"]]).bool()
        has_ref = batch["pck_ref"] > 0
        pred_px = decode_pose_px(pred, batch["crop"])  # (B, J, 2)
        for metric, rows in ((self.pckh, is_pckh & has_ref), (self.pck, ~is_pckh & has_ref)):
            if rows.any():
                metric.update(
                    pred_px[rows],
                    batch["pose_px"][rows],
                    batch["pose_px_valid"][rows],
                    batch["pck_ref"][rows],
                )
        is_3d = (batch["camera"] != 0).any(-1) & batch["pose_valid"][..., 2].any(-1)
        if pred.shape[-1] == 3 and is_3d.any():
            b = is_3d
            pred_mm = decode_pose_mm(
                pred[b], batch["crop"][b], batch["depth"][b], batch["camera"][b]
            )
            group = None
            if self.num_groups:
                grouped = pred.new_tensor([d == self.group_dataset for d in batch["dataset"]])
                group = torch.where(grouped.bool(), batch["action"], -1)[b]
            self.mpjpe.update(pred_mm, batch["pose_mm"][b], batch["pose_px_valid"][b], group)

    def compute(self) -> dict[str, Tensor]:
        """The metrics that saw samples on any rank (DDP: their values over all ranks)."""
        out: dict[str, Tensor] = {}
        metrics = (self.pckh, self.pck, self.mpjpe)
        for metric, seen in zip(metrics, updated_anywhere(metrics)):
            if seen:
                out.update(metric.compute())
        return out

    def details(self) -> dict[str, Any]:
        """``compute()`` as floats plus ``pckh_per_joint`` / ``pck_per_joint`` (J,) at 0.5 and
        ``mpjpe_per_action`` (G,) (NaN where empty), for the metrics that saw samples."""
        out: dict[str, Any] = {k: float(v) for k, v in self.compute().items()}
        for metric in (self.pckh, self.pck):
            if metric.update_called:
                out[f"{metric.prefix}_per_joint"] = metric.per_joint(0.5).tolist()
        if self.num_groups and self.mpjpe.update_called:
            out["mpjpe_per_action"] = self.mpjpe.per_group()[:, 0].tolist()
        return out

    def reset(self) -> None:
        for metric in (self.pckh, self.pck, self.mpjpe):
            metric.reset()

    def metric_names(self) -> list[str]:
        """Every key ``compute()`` can return."""
        pck = [f"{m.prefix}@{t:g}" for m in (self.pckh, self.pck) for t in m.report]
        return pck + [f"{m.prefix}_auc" for m in (self.pckh, self.pck)] + ["mpjpe", "pa_mpjpe"]


def check_pose_loss(pose_loss: str, visibility_joints: str) -> None:
    """``ValueError`` naming the config key for a ``loss.pose`` / ``loss.visibility_joints``
    that ``deephar.losses.pose_loss`` does not know."""
    if pose_loss not in POSE_LOSSES:
        raise ValueError(f"loss.pose = {pose_loss!r}: one of {POSE_LOSSES}")
    if visibility_joints not in VISIBILITY_JOINTS:
        raise ValueError(
            f"loss.visibility_joints = {visibility_joints!r}: one of {VISIBILITY_JOINTS}"
        )


def pose_step(
    net: DeepHAR,
    images: Tensor,
    batch: Mapping[str, Any],
    visibility_weight: float,
    pose: str = "l1l2",
    visibility_joints: str = "annotated",
    keras_bce: bool = False,
):
    """Forward still images (B, 3, H, W) and the official pose loss → (output, loss, parts);
    ``pose`` / ``visibility_joints`` / ``keras_bce``: ``loss.pose`` / ``loss.visibility_joints``
    / ``loss.keras_bce`` (``deephar.losses.pose_loss``)."""
    output = net.forward_pose(images)
    loss, parts = pose_loss(output, batch, visibility_weight, pose, visibility_joints, keras_bce)
    return output, loss, parts


def module_pose_step(module: TaskModule, batch: Mapping[str, Any]):
    """``pose_step`` of a task module holding the pose-loss options (``visibility_weight``,
    ``pose_loss``, ``visibility_joints``, ``keras_bce``): Pose2D3DModule, JointModule."""
    return pose_step(
        module.net,
        module.to_input(batch["image"]),
        batch,
        module.visibility_weight,
        module.pose_loss,
        module.visibility_joints,
        module.keras_bce,
    )


class Pose2D3DModule(TaskModule):
    """Pose regression on still images with the multitask network's pose part.

    net: ``build_model(cfg)``; optim: ``OptimSettings`` (or its dict); pckh_exclude: joint
    indices left out of PCKh/PCK (``datamodules.layouts.PCKH_EXCLUDED`` in the training layout);
    pose_loss / visibility_joints / keras_bce: ``loss.pose`` / ``loss.visibility_joints`` /
    ``loss.keras_bce`` of the config.
    Logs ``train/loss``, ``val/loss``, ``val/pckh@0.5``, ``test/mpjpe``, … and
    ``<optim.monitor>_best``.
    """

    def __init__(
        self,
        net: DeepHAR,
        optim: OptimSettings | Mapping[str, Any] | None = None,
        visibility_weight: float = 0.01,
        pckh_exclude: Sequence[int] = (),
        channels_last: bool = False,
        compile: bool = False,
        pose_loss: str = "l1l2",
        visibility_joints: str = "annotated",
        keras_bce: bool = False,
    ) -> None:
        super().__init__(net, optim, channels_last, compile)
        check_pose_loss(pose_loss, visibility_joints)
        self.visibility_weight = visibility_weight
        self.pose_loss, self.visibility_joints = pose_loss, visibility_joints
        self.keras_bce = keras_bce
        self.attach_metrics(pckh_exclude=pckh_exclude)
        self.save_settings(
            visibility_weight=visibility_weight,
            pckh_exclude=list(pckh_exclude),
            pose_loss=pose_loss,
            visibility_joints=visibility_joints,
            keras_bce=keras_bce,
        )

    @classmethod
    def build_metrics(
        cls, cfg: NetworkConfig, pckh_exclude: Sequence[int] = (), **options: Any
    ) -> dict[str, nn.Module]:
        return {"pose": PoseMetrics(cfg.num_joints, pckh_exclude)}

    def _shared_step(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        if batch["image"].ndim != 4:
            raise ValueError(
                f"Pose2D3DModule expects still images (B, 3, H, W), got {tuple(batch['image'].shape)}"
            )
        output, loss, parts = module_pose_step(self, batch)
        self.log_loss(stage, loss, parts, len(batch["image"]))
        if stage != "train":
            getattr(self, f"{stage}_pose").update(output.final, batch)
        return loss
