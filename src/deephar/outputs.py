"""Typed outputs of the network: what flows from the model to losses, metrics and plots."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class PoseOutput:
    """Per prediction block k = 1..K (intermediate supervision).

    Shapes for still images; time-distributed use adds T after B everywhere.
    - ``pose[k]``: (B, J, D) — x, y in [0, 1] of the input crop, z in [0, 1] (3D only).
    - ``visibility[k]``: (B, J) in (0, 1).
    - ``heatmaps[k]``: (B, J, H, W) joint heat-map logits (3D: averaged over depth, "hxy").
    - ``features``: (B, C, H, W) stem + first reception block output (appearance features).
    - ``logits[k]``: (B, N_h, H, W) all RegMap heat-map logits of block k (2D: joint + context
      maps; 3D: channel d·J + j), what the action model decodes; None when not kept.
    """

    pose: list[Tensor]
    visibility: list[Tensor]
    heatmaps: list[Tensor]
    features: Tensor | None = None
    logits: list[Tensor] | None = None

    @property
    def final(self) -> Tensor:
        """(B, J, D) pose of the last block."""
        return self.pose[-1]


@dataclass
class ActionOutput:
    """Per action block (logits; softmax gives the official outputs).

    - ``pose_branch[k]``: (B, A) for each of the action blocks of the pose-based branch.
    - ``appearance_branch[k]``: (B, A), empty when the branch did not run (provided poses).
    - ``aggregate``: (B, A) the learned combination of both branches, None without appearance.
    - ``poses``: the time-distributed pose output (B, T, ...), None when poses were provided.
    - ``pose_members[k]``: (M, B, A) block k of each of the M pose branches of an ensemble
      (``model.pose_members`` > 1; ``pose_branch[k]`` is then their mean: the loss trains each
      member on its own logits instead), else None.
    """

    pose_branch: list[Tensor]
    appearance_branch: list[Tensor]
    aggregate: Tensor | None
    poses: PoseOutput | None = None
    pose_members: list[Tensor] | None = None

    @property
    def all_logits(self) -> list[Tensor]:
        """Every prediction that receives a loss (pose, appearance, aggregate)."""
        out = [*self.pose_branch, *self.appearance_branch]
        return out + ([self.aggregate] if self.aggregate is not None else [])

    @property
    def final(self) -> Tensor:
        """(B, A) the prediction used for accuracy: aggregate, else the last pose block."""
        return self.aggregate if self.aggregate is not None else self.pose_branch[-1]
