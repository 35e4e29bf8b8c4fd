"""Typed network configuration.

Numbers for experiments live in YAML (``experiments/configs``); this module only declares the
fields, their meaning and the four published configurations of the official code.

Letter legend used across the project: B batch, T frames, J joints, D pose dimension (2|3),
H×W map size, Nd depth bins, C channels, A actions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the multitask network (paper Sections 3–4, Appendix A)."""

    input_size: int = 256  # square input image side, pixels
    num_joints: int = 16  # J
    dim: Literal[2, 3] = 2  # 2: x, y (+ context maps); 3: volumetric x, y, z
    depth_maps: int = 16  # Nd, depth bins of the 3D heat maps (dim == 3 only)
    context_maps: int = 2  # context maps per joint (dim == 2 only; official: 2)
    pose_blocks: int = 8  # K prediction blocks (8 pose-only, 4 inside action models)
    kernel_size: int = 5  # separable-conv kernel in the prediction blocks
    num_actions: int = 0  # A; 0 builds the pose model only
    num_frames: int = 16  # T, frames per clip for the action branches
    action_blocks: int = 4  # stacked action prediction blocks per branch
    pose_branch: Literal["v1", "v2"] = "v1"  # v1: Penn (2D), v2: NTU (3D)
    pose_members: int = 1  # M pose branches trained side by side, their logits averaged (1: paper)
    # Channel-width multiplier of the stem, pose blocks and action branches. 1.0 is the official
    # network (the only width the Keras converter accepts); smaller widths only for CPU demos/tests.
    width: float = 1.0

    def channels(self, official: int) -> int:
        """An official channel count at this ``width``: itself at 1.0, else rounded, ≥ 8."""
        return scale_channels(official, self.width)

    @property
    def num_heatmaps(self) -> int:
        """Channels of each RegMap: (1 + ctx)·J in 2D, Nd·J in 3D."""
        if self.dim == 2:
            return (1 + self.context_maps) * self.num_joints
        return self.depth_maps * self.num_joints

    @property
    def map_size(self) -> int:
        """Side of the heat maps (input / 8)."""
        return self.input_size // 8

    def with_(self, **changes) -> NetworkConfig:
        return replace(self, **changes)


def scale_channels(official: int, width: float = 1.0) -> int:
    """``official`` channels × ``width``, rounded, at least 8; exactly ``official`` at 1.0."""
    if width <= 0:
        raise ValueError(f"channel width multiplier must be > 0, got {width}")
    return official if width == 1.0 else max(8, round(official * width))


# The published configurations of the official release (SPEC.md, "Official pretrained weights").
MPII_2D = NetworkConfig(num_joints=16, dim=2, context_maps=2, pose_blocks=8)
H36M_3D = NetworkConfig(num_joints=17, dim=3, depth_maps=16, context_maps=0, pose_blocks=8)
PENN_MERGE = NetworkConfig(
    num_joints=16,
    dim=2,
    context_maps=2,
    pose_blocks=4,
    num_actions=15,
    num_frames=16,
    pose_branch="v1",
)
NTU_MERGE = NetworkConfig(
    num_joints=20,
    dim=3,
    depth_maps=8,
    context_maps=0,
    pose_blocks=4,
    num_actions=60,
    num_frames=20,
    pose_branch="v2",
)
PRESETS: dict[str, NetworkConfig] = {
    "mpii": MPII_2D,
    "h36m": H36M_3D,
    "penn": PENN_MERGE,
    "ntu": NTU_MERGE,
}
