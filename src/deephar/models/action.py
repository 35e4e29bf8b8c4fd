"""Action recognition part of the multitask network (paper Section 3.3, official ``action.py``).

Both branches see a clip as an image whose rows are the T frames and whose columns are the J
joints: the pose-based branch reads the (T, J, D) pose cube, the appearance-based branch the
(T, J, C) appearance features pooled under each joint's probability map. Each branch stacks
action prediction blocks that emit action heat maps (B, A, h, w); a prediction is their global
max-plus-min pooling. The aggregation re-weights the last maps of both branches and sums them.

Predictions are logits: the official outputs are their softmax.

Legend: B batch, T frames, J joints, D 2|3, C channels, H×W map size, A actions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deephar.config import scale_channels
from deephar.layers import (
    ActConv,
    SeparableConv2d,
    act_conv_bn,
    conv_bn,
    conv_bn_act,
    max_pool,
    max_pool_same,
    upsample,
)

APPEARANCE_WIDTH = 256  # appearance branch features after the 1×1 conv_bn (official)


def check_clip_size(frames: int, joints: int) -> None:
    """Both branches pool twice by 2 and re-inject up-sampled maps: T, J multiples of 4."""
    if frames % 4 or joints % 4:
        raise ValueError(f"action branches need T and J multiples of 4, got T={frames}, J={joints}")


def max_min_pool_same(x: Tensor, kernel: int = 2) -> Tensor:
    """Official ``max_min_pooling``: MaxPool(x) − MaxPool(−x), 'same' padding, stride = kernel."""
    return max_pool_same(x, kernel, kernel) - max_pool_same(-x, kernel, kernel)


def global_max_min_pool(maps: Tensor) -> Tensor:
    """(B, A, h, w) action heat maps → (B, A) logits: spatial max + spatial min."""
    flat = maps.flatten(2)
    return flat.amax(-1) + flat.amin(-1)


class ActionBlock(nn.Module):
    """One action prediction block on (B, n, h, w) features.

    Residual (act_conv_bn n/2 1×1 → act_conv_bn n 3×3), x1 = act_conv_bn n 3×3, action heat maps
    = ReLU → Conv 3×3 to A on max-plus-min pooled x1. All but the last block re-inject the maps:
    UpSample×2 → act_conv_bn n 3×3, added to the residual output and x1.
    """

    def __init__(self, channels: int, num_actions: int, last: bool = False) -> None:
        super().__init__()
        n = channels
        self.reduce = act_conv_bn(n, n // 2, 1)
        self.expand = act_conv_bn(n // 2, n, 3)
        self.features = act_conv_bn(n, n, 3)
        self.action_maps = ActConv(n, num_actions, 3)
        self.reinject = None if last else act_conv_bn(num_actions, n, 3)

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        """(B, n, h, w) → next input (B, n, h, w) (None when last), maps (B, A, h/2, w/2)."""
        x = x + self.expand(self.reduce(x))
        x1 = self.features(x)
        maps = self.action_maps(max_min_pool_same(x1))
        if self.reinject is None:
            return None, maps
        return x + x1 + self.reinject(upsample(maps)), maps


class ActionBlocks(nn.Module):
    """A stack of ``num_blocks`` action blocks; returns the action maps of every block."""

    def __init__(self, channels: int, num_actions: int, num_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ActionBlock(channels, num_actions, last=k == num_blocks - 1) for k in range(num_blocks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = []
        for block in self.blocks:
            x, m = block(x)
            maps.append(m)
        return maps


# (widths of the 3×1, 3×3, 3×5 convs), width of branch a, (widths of branch b): official v1 / v2.
POSE_BRANCH_WIDTHS = {
    "v1": ((8, 16, 24), 56, (32, 56)),
    "v2": ((12, 24, 36), 112, (64, 112)),
}


class PoseActionBranch(nn.Module):
    """Pose-based recognition: the (T, J, D) pose cube, weighted by joint probability, as an image.

    Front: conv_bn_act 3×1 ‖ 3×3 ‖ 3×5 → concat → [conv_bn 3×3 ‖ (conv_bn 1×1 → conv_bn 3×3)] →
    concat (112 channels in v1, 224 in v2) → max-plus-min pooling 2×2; then the action blocks.
    """

    def __init__(
        self,
        dim: int,
        num_actions: int,
        version: str = "v1",
        num_blocks: int = 4,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if version not in POSE_BRANCH_WIDTHS:
            raise ValueError(f"unknown pose branch version {version!r} (expected v1 or v2)")
        (w1, w2, w3), wa, (wb1, wb2) = POSE_BRANCH_WIDTHS[version]
        w1, w2, w3, wa, wb1, wb2 = (scale_channels(n, width) for n in (w1, w2, w3, wa, wb1, wb2))
        self.temporal = nn.ModuleList(
            [conv_bn_act(dim, w1, (3, 1)), conv_bn_act(dim, w2, 3), conv_bn_act(dim, w3, (3, 5))]
        )
        w = w1 + w2 + w3
        self.branch_a = conv_bn(w, wa, 3)
        self.branch_b = nn.Sequential(conv_bn(w, wb1, 1), conv_bn(wb1, wb2, 3))
        self.width = wa + wb2
        self.blocks = ActionBlocks(self.width, num_actions, num_blocks)

    def forward(self, pose: Tensor, prob: Tensor) -> list[Tensor]:
        """pose (B, T, J, D), prob (B, T, J) → action maps per block, each (B, A, T/4, J/4)."""
        if pose.dim() != 4 or prob.shape != pose.shape[:3]:
            raise ValueError(
                f"expected pose (B,T,J,D) and prob (B,T,J), got {pose.shape}, {prob.shape}"
            )
        check_clip_size(pose.shape[1], pose.shape[2])
        x = (pose * prob.unsqueeze(-1)).permute(0, 3, 1, 2)  # (B, D, T, J)
        x = torch.cat([conv(x) for conv in self.temporal], dim=1)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)  # (B, width, T, J)
        return self.blocks(max_min_pool_same(x))


def appearance_features(features: Tensor, prob_maps: Tensor, num_frames: int) -> Tensor:
    """Joint-wise pooling of visual features: f[t, j] = Σ_uv prob_maps[t, j](u, v) · F[t](u, v).

    features (B·T, C, H, W), prob_maps (B·T, J, H, W) (spatial softmax of the joint heat-map
    logits; 3D: of hxy) → (B, T, J, C).

    As features (C, HW) @ maps (HW, J): the gradient w.r.t. the features comes out contiguous,
    like the pose network's own (``einsum("njhw,nchw->njc")`` gave it channels-last strides, on
    which eager ran the reception block's convolution backward with other kernels than a
    compiled pose network, whose AOT backward takes its incoming gradients contiguous).
    """
    f = features.flatten(2) @ prob_maps.flatten(2).transpose(1, 2)  # (B·T, C, J)
    return f.transpose(1, 2).unflatten(0, (-1, num_frames))


class AppearanceBranch(nn.Module):
    """Appearance-based recognition: conv_bn 256 1×1 → MaxPool 2×2 → the action blocks (256 ×
    ``width`` channels)."""

    def __init__(
        self, num_features: int, num_actions: int, num_blocks: int = 4, width: float = 1.0
    ) -> None:
        super().__init__()
        channels = scale_channels(APPEARANCE_WIDTH, width)
        self.project = conv_bn(num_features, channels, 1)
        self.blocks = ActionBlocks(channels, num_actions, num_blocks)

    def forward(self, features: Tensor) -> list[Tensor]:
        """(B, T, J, C) appearance features → action maps per block, each (B, A, T/4, J/4)."""
        check_clip_size(features.shape[1], features.shape[2])
        x = features.permute(0, 3, 1, 2)  # (B, C, T, J)
        return self.blocks(max_pool(self.project(x), 2))


class Aggregation(nn.Module):
    """Learned combination of both branches: a trainable 1×1 SeparableConv per branch (identity at
    start) on its last action maps, summed, global max-plus-min pooled → (B, A) logits."""

    def __init__(self, num_actions: int) -> None:
        super().__init__()
        self.pose_weighting = SeparableConv2d(num_actions, num_actions, 1)
        self.appearance_weighting = SeparableConv2d(num_actions, num_actions, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for sep in (self.pose_weighting, self.appearance_weighting):
            nn.init.ones_(sep.depthwise.weight)
            with torch.no_grad():
                sep.pointwise.weight.copy_(
                    torch.eye(sep.pointwise.weight.shape[0])[..., None, None]
                )

    def forward(self, pose_maps: Tensor, appearance_maps: Tensor) -> Tensor:
        """(B, A, h, w) last maps of each branch → (B, A) logits."""
        m = self.pose_weighting(pose_maps) + self.appearance_weighting(appearance_maps)
        return global_max_min_pool(m)
