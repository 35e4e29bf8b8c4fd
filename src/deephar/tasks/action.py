"""ActionModule: action recognition from clips (estimated poses + appearance) or provided poses.

The pose network is frozen (``net.freeze_pose``; its BNs keep their statistics) unless
``freeze_pose=False`` (the fine-tuning stage). Loss: cross-entropy on all 9 outputs
(``deephar.losses.action_loss``). A batch without ``image`` holds provided poses (Penn Action
annotations, NTU Kinect skeletons: the readers' ``mode="poses"``) and feeds the pose branch only.
Metrics: clip accuracy of every prediction block (Figure 8) and multi-clip video accuracy.

Alphabet: B batch, T frames, J joints, D 2|3, A actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from deephar.config import NetworkConfig
from deephar.losses import action_loss
from deephar.metrics import VideoAccuracy
from deephar.models.multitask import DeepHAR
from deephar.outputs import ActionOutput
from deephar.tasks.base import OptimSettings, TaskModule, attach_action_head, updated_anywhere


def action_forward(net: DeepHAR, batch: Mapping[str, Any], images: Tensor | None = None):
    """Clips (B, T, 3, H, W) → both branches; no ``image`` → the pose branch on the provided
    poses ``pose[..., :D]`` (B, T, J, D) with probability 1 on valid joints (B, T, J)."""
    if "image" in batch:
        return net.forward_clip(batch["image"] if images is None else images)
    dim = net.cfg.dim
    prob = batch["pose_valid"][..., :dim].all(-1).to(batch["pose"].dtype)  # (B, T, J)
    return net.forward_action_from_poses(batch["pose"][..., :dim], prob)


def block_names(num_blocks: int) -> list[str]:
    """Names of the predictions in ``ActionOutput.all_logits`` order: pose1…, app1…, agg."""
    return (
        [f"pose{k + 1}" for k in range(num_blocks)]
        + [f"app{k + 1}" for k in range(num_blocks)]
        + ["agg"]
    )


BRANCHES = ("pose", "appearance", "aggregation")  # Table 5 columns


def branch_logits(output: ActionOutput) -> dict[str, Tensor]:
    """The last prediction of each branch that ran (Table 5 columns), each (B, A)."""
    out = {"pose": output.pose_branch[-1]}
    if output.appearance_branch:
        out["appearance"] = output.appearance_branch[-1]
    if output.aggregate is not None:
        out["aggregation"] = output.aggregate
    return out


class ActionMetrics(nn.Module):
    """THE action scorer (task modules and ``experiments.evaluate``): clip accuracy of every
    prediction block and of the final prediction (torchmetrics ``MulticlassAccuracy``, labels −1
    ignored), and multi-clip video accuracy of the final prediction and of each branch.

    update(output, batch) with labels ``batch["action"]`` (B,) and ``batch["video_id"]`` (else
    ``sample_id``); a test-time view of a clip (e.g. its mirror) is one more update with the same
    ids. compute() → {"acc", "video_acc", "acc_pose1", …, "acc_app1", …, "acc_agg",
    "video_acc_pose", "video_acc_appearance", "video_acc_aggregation"} for what ran, and with an
    ensemble of ``members`` pose branches (``model.pose_members``) "video_acc_member1", … : each
    member's last block alone (what the ensemble's mean gains over its members).
    video_reduction: "mean" of clip softmax scores, or "prod" (official Penn Action).
    """

    def __init__(
        self, num_blocks: int, num_actions: int, video_reduction: str = "mean", members: int = 1
    ):
        super().__init__()
        self.names, self.num_actions = block_names(num_blocks), num_actions
        self.blocks = nn.ModuleDict({n: self._accuracy(num_actions) for n in self.names})
        self.clip = self._accuracy(num_actions)
        self.video = VideoAccuracy(video_reduction)
        self.branches = nn.ModuleDict({b: VideoAccuracy(video_reduction) for b in BRANCHES})
        self.members = nn.ModuleList(
            VideoAccuracy(video_reduction) for _ in range(members if members > 1 else 0)
        )

    @staticmethod
    def _accuracy(num_actions: int) -> MulticlassAccuracy:
        # validate_args=False: no per-update value checks (a host-device sync each)
        return MulticlassAccuracy(
            num_actions, average="micro", ignore_index=-1, validate_args=False
        )

    def update(self, output: ActionOutput, batch: Mapping[str, Any]) -> None:
        labels = batch["action"]
        ids = batch["video_id"] if "video_id" in batch else batch["sample_id"]
        outputs = {f"pose{k + 1}": z for k, z in enumerate(output.pose_branch)}
        outputs |= {f"app{k + 1}": z for k, z in enumerate(output.appearance_branch)}
        if output.aggregate is not None:
            outputs["agg"] = output.aggregate
        for name, logits in outputs.items():
            self.blocks[name].update(logits.detach(), labels)
        final = output.final.detach()
        self.clip.update(final, labels)
        self.video.update(final, labels, ids)
        for name, logits in branch_logits(output).items():
            self.branches[name].update(logits.detach(), labels, ids)
        if output.pose_members is not None:
            for metric, logits in zip(self.members, output.pose_members[-1]):
                metric.update(logits.detach(), labels, ids)

    def compute(self) -> dict[str, Tensor]:
        """The accuracies of what ran on any rank (DDP: over all ranks; a rank that saw no clip
        enters the same gathers with empty states)."""
        named = {"acc": self.clip, "video_acc": self.video}
        named |= {f"acc_{n}": m for n, m in self.blocks.items()}
        named |= {f"video_acc_{b}": m for b, m in self.branches.items()}
        named |= {f"video_acc_member{k + 1}": m for k, m in enumerate(self.members)}
        seen = dict(zip(named, updated_anywhere(list(named.values()))))
        if not seen["acc"]:
            return {}
        for metric in (m for k, m in named.items() if seen[k] and not m.update_called):
            if isinstance(metric, VideoAccuracy):  # cat-states: gathered with matching shapes
                metric.update(*self._empty_clips(metric.device))
        return {key: metric.compute() for key, metric in named.items() if seen[key]}

    def _empty_clips(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """No clip: logits (0, A), labels (0,), ids (0,)."""
        labels = torch.zeros(0, dtype=torch.long, device=device)
        return torch.zeros(0, self.num_actions, device=device), labels, labels

    def reset(self) -> None:
        for metric in (
            self.clip,
            self.video,
            *self.blocks.values(),
            *self.branches.values(),
            *self.members,
        ):
            metric.reset()

    def metric_names(self) -> list[str]:
        """Every key ``compute()`` can return."""
        return (
            ["acc", "video_acc"]
            + [f"acc_{n}" for n in self.names]
            + [f"video_acc_{b}" for b in self.branches]
            + [f"video_acc_member{k + 1}" for k in range(len(self.members))]
        )


class ActionModule(TaskModule):
    """Action training on clips or provided poses; the pose network frozen unless fine-tuning.

    net: ``build_model(cfg)`` with ``cfg.num_actions > 0``; optim: ``OptimSettings`` (paper: SGD
    Nesterov, momentum 0.98, lr 2e-4, ×0.2 on plateau); label_smoothing of the cross-entropy. Logs ``train/loss``, ``val/acc``,
    ``val/video_acc``, ``val/acc_pose1`` … ``val/acc_agg``, ``test/…``.
    """

    def __init__(
        self,
        net: DeepHAR,
        optim: OptimSettings | Mapping[str, Any] | None = None,
        freeze_pose: bool = True,
        video_reduction: str = "mean",
        channels_last: bool = False,
        compile: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(net, optim, channels_last, compile)
        attach_action_head(net, "ActionModule", freeze_pose)
        self.label_smoothing = label_smoothing
        self.attach_metrics(video_reduction=video_reduction)
        self.save_settings(
            freeze_pose=freeze_pose,
            video_reduction=video_reduction,
            label_smoothing=label_smoothing,
        )

    @classmethod
    def build_metrics(
        cls, cfg: NetworkConfig, video_reduction: str = "mean", **options: Any
    ) -> dict[str, nn.Module]:
        return {
            "action": ActionMetrics(
                cfg.action_blocks, cfg.num_actions, video_reduction, cfg.pose_members
            )
        }

    def _shared_step(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        images = self.to_input(batch["image"]) if "image" in batch else None
        output = action_forward(self.net, batch, images)
        loss = action_loss(output, batch["action"], self.label_smoothing)
        self.log_loss(stage, loss, {}, len(batch["action"]))
        if stage != "train":
            getattr(self, f"{stage}_action").update(output, batch)
        return loss

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """(B, A) softmax scores of the final prediction."""
        with torch.no_grad():
            return action_forward(self.net, batch).final.softmax(-1)
