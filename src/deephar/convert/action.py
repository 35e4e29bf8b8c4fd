"""Official Keras merge model (``action.build_merge_model``) → the action part of ``DeepHAR``.

Top-level groups of a merge-model file: ``td_Stem``, ``td_rBlock1``, ``td_Model1`` (the pose
network, time-distributed), the constant soft-argmax / aggregation groups, ``PoseAR`` (pose-based
branch), ``GuidedVisAR`` (appearance branch) and two auto-named ``separable_conv2d_*`` groups
(the aggregation's 1×1 weighting, pose branch first).

Every action layer is auto-named (``conv2d_47``: a global counter), so layers are taken in order of
first appearance (Keras' layer order: by graph depth, then traversal order — not creation order:
in the pose-branch front the 1×1 of branch b precedes the 3×3 of branch a) and checked by kind and
shape. The two weighting convs are found by content, not by name.
"""

from __future__ import annotations

from torch import nn

from deephar.convert.keras_h5 import KerasWeightFile
from deephar.convert.mapping import GroupPlan, LayerSpec, bn, conv, sepconv
from deephar.models.action import ActionBlock, AppearanceBranch, PoseActionBranch
from deephar.models.action_head import ActionHead

POSE_BRANCH_GROUPS = ("PoseAR",)
APPEARANCE_GROUPS = ("GuidedVisAR",)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def conv_bn_specs(prefix: str) -> list[LayerSpec]:
    """A ``ConvBN`` module (conv_bn, conv_bn_act, act_conv_bn): conv, then its BN."""
    return [conv(f"{prefix}.conv"), bn(f"{prefix}.bn")]


def action_block_specs(block: ActionBlock, prefix: str) -> list[LayerSpec]:
    """Keras order of one action block: residual 1×1 and 3×3, x1, action maps, re-injection."""
    specs = [
        *conv_bn_specs(f"{prefix}.reduce"),
        *conv_bn_specs(f"{prefix}.expand"),
        *conv_bn_specs(f"{prefix}.features"),
        conv(f"{prefix}.action_maps.conv"),
    ]
    if block.reinject is not None:
        specs += conv_bn_specs(f"{prefix}.reinject")
    return specs


def _blocks_specs(blocks: nn.Module, prefix: str) -> list[LayerSpec]:
    return [
        spec
        for k, block in enumerate(blocks.blocks)
        for spec in action_block_specs(block, f"{prefix}.blocks.{k}")
    ]


def pose_branch_specs(branch: PoseActionBranch, prefix: str) -> list[LayerSpec]:
    """``PoseAR``: the three temporal convs, their BNs, then branch b's 1×1 (deeper in the graph),
    branch a's and b's 3×3 convs, their BNs; then the action blocks."""
    t = [f"{prefix}.temporal.{i}" for i in range(3)]
    a, b1, b2 = f"{prefix}.branch_a", f"{prefix}.branch_b.0", f"{prefix}.branch_b.1"
    front = [
        *(conv(f"{p}.conv") for p in t),
        *(bn(f"{p}.bn") for p in t),
        *conv_bn_specs(b1),
        conv(f"{a}.conv"),
        conv(f"{b2}.conv"),
        bn(f"{a}.bn"),
        bn(f"{b2}.bn"),
    ]
    return front + _blocks_specs(branch.blocks, f"{prefix}.blocks")


def appearance_branch_specs(branch: AppearanceBranch, prefix: str) -> list[LayerSpec]:
    """``GuidedVisAR``: the 1×1 projection to 256 channels, then the action blocks."""
    return conv_bn_specs(f"{prefix}.project") + _blocks_specs(branch.blocks, f"{prefix}.blocks")


def weighting_groups(kfile: KerasWeightFile, num_actions: int) -> list[str]:
    """The aggregation's two top-level 1×1 SeparableConv2D groups (A → A), in file order.

    Found by content (their names are auto-generated). File order is Keras' layer order, which
    puts the pose-branch weighting first (``add([p, v])`` is traversed in argument order).
    """
    found = []
    for name in kfile.groups_with_weights():
        layers = kfile.layers(name)
        if len(layers) == 1 and layers[0].kind == "sepconv":
            if layers[0].weights["pointwise_kernel"].shape == (1, 1, num_actions, num_actions):
                found.append(name)
    if len(found) != 2:
        raise ValueError(
            f"{kfile.path}: expected 2 top-level 1×1 separable convs over {num_actions} actions "
            f"(the aggregation weighting), found {found}"
        )
    return found


def action_plans(
    kfile: KerasWeightFile, head: ActionHead, prefix: str = "action"
) -> list[GroupPlan]:
    """Group plans filling ``head`` (keys under ``prefix``) from a merge-model file: the file's one
    pose branch fills member 1 of the pose ensemble (official keys); a head of M > 1 members is
    filled by ``convert.keras_state_dict`` (which copies it or refuses)."""
    agg = head.aggregation
    pose_w, app_w = weighting_groups(kfile, agg.pose_weighting.pointwise.weight.shape[0])
    hint = "check num_actions, pose_branch (v1/v2) and action_blocks"
    return [
        GroupPlan(
            POSE_BRANCH_GROUPS,
            pose_branch_specs(head.pose_branch.members[0], _join(prefix, "pose_branch")),
            hint,
        ),
        GroupPlan(
            APPEARANCE_GROUPS,
            appearance_branch_specs(head.appearance_branch, _join(prefix, "appearance_branch")),
            hint,
        ),
        GroupPlan((pose_w,), [sepconv(_join(prefix, "aggregation.pose_weighting"))]),
        GroupPlan((app_w,), [sepconv(_join(prefix, "aggregation.appearance_weighting"))]),
    ]
