"""The whole multitask network: one stem (the backbone), the pose network, the action head.

For a clip, the pose network runs time-distributed (the T frames as B·T images); the action head
reads its last block — pose, joint probabilities and probability maps — and the appearance
features of the first reception block (official ``action.build_merge_model``).

Legend: B batch, T frames, J joints, D 2|3, C channels, H×W map size, Nd depth bins, A actions.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from deephar.config import NetworkConfig
from deephar.models.action import appearance_features
from deephar.models.action_head import ActionHead
from deephar.models.pose import PoseNet, map_pose_output
from deephar.models.stem import STEM_CHANNELS, Stem
from deephar.outputs import ActionOutput, PoseOutput
from deephar.soft_argmax import spatial_softmax, split_volumetric, visibility_logits

# Official action-model joint probability: sigmoid(4·max h_j) in 2D, sigmoid(2·(max hxy + max hz))
# in 3D — sharper than the pose model's visibility.
PROB_GAIN = {2: 4.0, 3: 2.0}


def joint_probability(logits: Tensor, num_joints: int, dim: int) -> Tensor:
    """Heat-map logits (N, N_h, H, W) of the last pose block → (N, J) joint probabilities: the
    pose visibility's logits (``soft_argmax.visibility_logits``) × ``PROB_GAIN``."""
    return torch.sigmoid(PROB_GAIN[dim] * visibility_logits(logits, num_joints, dim))


def joint_maps(logits: Tensor, num_joints: int, dim: int) -> Tensor:
    """Heat-map logits (N, N_h, H, W) of a pose block → its joint maps (N, J, H, W), the
    ``heatmaps`` the pose network returns (2D: the first J channels; 3D: hxy, the depth mean).

    Recomputed from the logits so that the action head reads the logits of a compiled pose
    network and not also a view of them: AOT autograd regenerates an output aliasing another
    outside its graph and adds the two gradients before its backward, eager adds the view's
    gradient to the decoding's first (the same sum rounded otherwise: not bit-exact to eager)."""
    if dim == 2:
        return logits[:, :num_joints]
    return split_volumetric(logits, num_joints)[0]


def batch_dynamic(*tensors: Tensor) -> None:
    """Mark dim 0 (the batch, or B·T frames) of each input of a compiled part dynamic, so that
    the last, smaller batch of an epoch runs the same graph instead of a recompiled one (a no-op
    in eager mode; a size-0/1 dim stays specialised)."""
    if torch.compiler.is_compiling():  # inside a compiled caller: its own shapes rule
        return
    for tensor in tensors:
        torch._dynamo.maybe_mark_dynamic(tensor, 0)


class DeepHAR(nn.Module):
    """Stem → pose network (K blocks) → action head (pose and appearance branches, aggregation).

    ``backbone`` is the stem, registered once (under ``pose.stem``) so the state dict has one copy.
    ``action`` is None for pose-only configurations (``cfg.num_actions == 0``).
    """

    def __init__(self, cfg: NetworkConfig, stem: Stem | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.pose = PoseNet(cfg, stem=stem if stem is not None else Stem(cfg.width))
        self.action = (
            ActionHead(
                cfg.dim,
                cfg.num_actions,
                cfg.channels(STEM_CHANNELS),
                cfg.pose_branch,
                cfg.action_blocks,
                cfg.width,
                cfg.pose_members,
            )
            if cfg.num_actions > 0
            else None
        )
        self.pose_frozen = False

    @property
    def backbone(self) -> Stem:
        """The shared entry flow (the very object inside ``pose``)."""
        return self.pose.stem

    def forward(self, x: Tensor) -> PoseOutput | ActionOutput:
        """(B, 3, H, W) images → pose; (B, T, 3, H, W) clips → action."""
        return self.forward_pose(x) if x.ndim == 4 else self.forward_clip(x)

    def forward_pose(self, images: Tensor) -> PoseOutput:
        """(B, 3, H, W) in [−1, 1] → per-block pose outputs."""
        batch_dynamic(images)
        return self.pose(images)

    def forward_clip(self, clips: Tensor) -> ActionOutput:
        """(B, T, 3, H, W) in [−1, 1] → action logits of both branches and their aggregate, with
        the time-distributed pose outputs (B, T, ...) in ``poses``."""
        head = self._head()
        if clips.ndim != 5 or clips.shape[2] != 3:
            raise ValueError(
                f"forward_clip expects (B, T, 3, H, W) clips, got {tuple(clips.shape)}"
            )
        b, t = clips.shape[:2]
        frames = clips.flatten(0, 1)  # frames as B·T images
        batch_dynamic(frames)
        out = self.pose(frames)
        h = out.logits[-1]  # (B·T, N_h, H, W)
        prob = joint_probability(h, self.cfg.num_joints, self.cfg.dim).unflatten(0, (b, t))
        pose = out.pose[-1].unflatten(0, (b, t))  # (B, T, J, D)
        feats = appearance_features(
            out.features, spatial_softmax(joint_maps(h, self.cfg.num_joints, self.cfg.dim)), t
        )
        batch_dynamic(pose, prob, feats)
        poses = map_pose_output(out, lambda x: x.unflatten(0, (b, t)))
        return dataclasses.replace(head(pose, prob, feats), poses=poses)

    def forward_action_from_poses(self, pose: Tensor, prob: Tensor) -> ActionOutput:
        """Pose branch only, on given poses (annotations, Kinect skeletons): pose (B, T, J, D),
        prob (B, T, J) (1 for valid joints, 0 otherwise)."""
        batch_dynamic(pose, prob)
        return self._head()(pose, prob)

    def freeze_pose(self, frozen: bool = True) -> None:
        """Freeze (or release) the stem and pose blocks; frozen BNs keep their moving statistics."""
        self.pose_frozen = frozen
        for param in self.pose.parameters():
            param.requires_grad_(not frozen)
        self.pose.train(self.training and not frozen)

    def frozen_buffers(self) -> list[str]:
        """Names (as in ``named_buffers``) of the pose network's buffers while it is frozen: its
        BN statistics cannot change, so DDP need not broadcast them every step (empty otherwise)."""
        if not self.pose_frozen:
            return []
        return [f"pose.{name}" for name, _ in self.pose.named_buffers()]

    def train(self, mode: bool = True) -> DeepHAR:
        super().train(mode)
        if self.pose_frozen:
            self.pose.eval()
        return self

    def _head(self) -> ActionHead:
        if self.action is None:
            raise RuntimeError("this network has no action head (cfg.num_actions == 0)")
        return self.action


def build_model(cfg: NetworkConfig) -> DeepHAR:
    """The network for ``cfg``: pose-only when ``cfg.num_actions == 0``, else the merge model."""
    return DeepHAR(cfg)
