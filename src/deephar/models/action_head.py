"""The action head: the pose-based branch (an ensemble of M members), the appearance-based branch
and their aggregation (official ``action.build_merge_model`` without the pose network).

Legend: B batch, T frames, J joints, D 2|3, C channels, A actions, M pose members.
"""

from __future__ import annotations

from torch import Tensor, nn

from deephar.models.action import Aggregation, AppearanceBranch, global_max_min_pool
from deephar.models.pose_ensemble import PoseEnsemble, rename_former_keys
from deephar.outputs import ActionOutput


class ActionHead(nn.Module):
    """Both recognition branches and their aggregation (the trainable part of the merge model).

    ``pose_branch`` is a ``PoseEnsemble`` of ``pose_members`` copies of the paper's pose branch
    (one: the paper); the aggregation reads the members' mean maps.
    """

    def __init__(
        self,
        dim: int,
        num_actions: int,
        num_features: int,
        version: str = "v1",
        num_blocks: int = 4,
        width: float = 1.0,
        pose_members: int = 1,
    ) -> None:
        super().__init__()
        self.pose_branch = PoseEnsemble(dim, num_actions, version, num_blocks, width, pose_members)
        self.appearance_branch = AppearanceBranch(num_features, num_actions, num_blocks, width)
        self.aggregation = Aggregation(num_actions)
        self.register_load_state_dict_pre_hook(_former_ensemble_keys)

    def forward(self, pose: Tensor, prob: Tensor, features: Tensor | None = None) -> ActionOutput:
        """pose (B, T, J, D), prob (B, T, J), appearance features (B, T, J, C) or None → the
        ``ActionOutput`` without ``poses``: appearance logits empty and no aggregate without
        features; ``pose_members`` the members' own logits when M > 1 (else None)."""
        pose_out = self.pose_branch(pose, prob)
        members = pose_out.member_logits if len(self.pose_branch) > 1 else None
        if features is None:
            return ActionOutput(pose_out.logits, [], None, pose_members=members)
        vis_maps = self.appearance_branch(features)
        vis_logits = [global_max_min_pool(m) for m in vis_maps]
        aggregate = self.aggregation(pose_out.maps[-1], vis_maps[-1])
        return ActionOutput(pose_out.logits, vis_logits, aggregate, pose_members=members)


def _former_ensemble_keys(
    module: nn.Module, state: dict[str, Tensor], prefix: str, *args: object
) -> None:
    """Load pre-hook: a checkpoint of the former layout (members 2…M in ``pose_extra``) loads."""
    renamed = rename_former_keys(state, prefix)
    state.clear()
    state.update(renamed)
