"""Training losses of the official code: elastic net (and its variants) on valid coordinates,
visibility BCE, action CE.

Alphabet: B batch, T frames, J joints, D pose dimension (2|3), A actions.

Every loss accepts clips as well as still images: any leading dimensions (B or B, T) are flattened
into one sample axis N, which is what the official time-distributed model does (it averages the
per-frame losses over frames and then over the batch).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from deephar.outputs import ActionOutput, PoseOutput
from deephar.soft_argmax import visibility_logits as soft_argmax_logits


def _check_same_shape(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shape mismatch: {shapes}")


def masked_sample_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Official per-sample normalisation: mean over samples of Σ_valid values / max(1, count).

    values, mask (N, …): everything after the first dimension belongs to one sample. A sample
    without valid elements contributes 0 (and still counts in the mean over N, as in Keras).
    """
    mask = mask.to(values.dtype)
    dims = tuple(range(1, values.ndim))
    total = (values * mask).sum(dims)  # (N,)
    count = mask.sum(dims).clamp(min=1.0)  # (N,)
    return (total / count).mean()


POSE_LOSSES = ("l1l2", "l1l2bincross", "l1", "l2")  # ``loss.pose``: the official options
VISIBILITY_JOINTS = ("annotated", "all")  # ``loss.visibility_joints``
KERAS_EPSILON = 1e-7  # Keras 2.1.4 ``K.epsilon()``: the clip of probabilities in its BCE
BINCROSS_WEIGHT = 0.01  # l1l2bincross: weight of the per-coordinate BCE (official constant)


def keras_binary_crossentropy(prob: Tensor, target: Tensor) -> Tensor:
    """Keras 2.1.4 ``K.binary_crossentropy(target, prob)`` on probabilities, per element: the
    prediction clipped to [ε, 1 − ε] (ε = 1e-7; no gradient where clipped), then the sigmoid
    cross-entropy of its logit log(p / (1 − p)). prob, target (…) → (…)."""
    prob = prob.float().clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
    logit = torch.log(prob / (1.0 - prob))
    return F.binary_cross_entropy_with_logits(logit, target.float(), reduction="none")


def coordinate_loss(pred: Tensor, target: Tensor, valid: Tensor, kind: str = "l1l2") -> Tensor:
    """Official pose losses (``pose_regression_loss(kind, …)``, ``losses.POSE_LOSSES``): per valid
    element ``l1l2`` |Δ| + Δ², ``l1l2bincross`` |Δ| + Δ² + 0.01·BCE(target, pred), ``l1`` |Δ|,
    ``l2`` Δ²; summed over valid elements / max(1, count) per sample, averaged over samples.

    pred, target (…, J, D); valid (…, J, D) bool. The count is taken per sample (per frame for
    clips) as ``elasticnet_loss_on_valid_joints`` does. Invalid elements contribute nothing, even
    when their target holds NaN or garbage.
    """
    if kind not in POSE_LOSSES:
        raise ValueError(f"loss.pose = {kind!r}: one of {POSE_LOSSES}")
    _check_same_shape(pred=pred, target=target, valid=valid)
    valid = valid.bool()
    zero = torch.zeros((), dtype=pred.dtype)
    delta = torch.where(valid, pred - target, zero)
    if kind == "l1":
        per_element = delta.abs()  # (…, J, D)
    elif kind == "l2":
        per_element = delta.square()
    else:
        per_element = delta.abs() + delta.square()
    if kind == "l1l2bincross":
        safe_target = torch.where(valid, target, zero)
        per_element = per_element + BINCROSS_WEIGHT * keras_binary_crossentropy(pred, safe_target)
    return masked_sample_mean(per_element.flatten(0, -3), valid.flatten(0, -3))


def elastic_net(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Official pose loss ``l1l2``: Σ(|Δ| + Δ²) over valid elements / max(1, count), averaged
    over samples (``coordinate_loss(…, "l1l2")``); shapes as there."""
    return coordinate_loss(pred, target, valid, "l1l2")


def visibility_bce(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of visibility logits (…, J) on masked joints (per-sample mean), from
    logits in fp32: safe under autocast (CUDA refuses ``binary_cross_entropy`` on probabilities)
    and without the saturation of a low-precision sigmoid."""
    _check_same_shape(logits=logits, target=target, mask=mask)
    bce = F.binary_cross_entropy_with_logits(
        logits.float(), target.float(), reduction="none"
    )  # (…, J)
    return masked_sample_mean(bce.flatten(0, -2), mask.bool().flatten(0, -2))


def keras_visibility_bce(prob: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``visibility_bce`` as the official Keras code computes it: on the probabilities (…, J),
    ``keras_binary_crossentropy`` (clipped to [1e-7, 1 − 1e-7] in fp32: a saturated visibility
    costs at most ≈ 16 and gets no gradient), per-sample mean over masked joints."""
    _check_same_shape(prob=prob, target=target, mask=mask)
    bce = keras_binary_crossentropy(prob, target)  # (…, J)
    return masked_sample_mean(bce.flatten(0, -2), mask.bool().flatten(0, -2))


def visibility_logits(output: PoseOutput) -> list[Tensor]:
    """Per block k, fp32 logits (…, J) whose sigmoid is ``output.visibility[k]``
    (``soft_argmax.visibility_logits`` of the block's heat-map logits); without
    ``output.logits``: logit(visibility)."""
    out = []
    for k, vis in enumerate(output.visibility):
        if output.logits is None or output.logits[k] is None:
            out.append(torch.logit(vis.float(), eps=1e-7))
            continue
        num_joints, dim = output.pose[k].shape[-2:]
        h = output.logits[k].float().flatten(0, -4)  # (N, N_h, H, W)
        out.append(soft_argmax_logits(h, num_joints, dim).reshape(vis.shape))
    return out


def _visibility_mask(batch: Mapping[str, Tensor], joints: str = "annotated") -> Tensor:
    """Joints whose visibility BCE counts (``loss.visibility_joints``).

    ``annotated`` (ours): annotated joints (``pose_px_valid``). The target is 1 iff the joint is
    inside the crop, so an annotated joint outside the crop is a genuine negative; only
    unannotated joints are left out. Without ``pose_px_valid`` the joints valid in x and y are
    used. ``all`` (official ``train_mpii_singleperson.py``): every joint, an unannotated one being
    a target 0 like one outside the crop.
    """
    if joints not in VISIBILITY_JOINTS:
        raise ValueError(f"loss.visibility_joints = {joints!r}: one of {VISIBILITY_JOINTS}")
    if joints == "all":
        return torch.ones_like(batch["visible"], dtype=torch.bool)
    if "pose_px_valid" in batch:
        return batch["pose_px_valid"].bool()
    return batch["pose_valid"][..., :2].all(-1)


def pose_block_losses(
    output: PoseOutput,
    batch: Mapping[str, Tensor],
    visibility_weight: float = 0.01,
    pose: str = "l1l2",
    visibility_joints: str = "annotated",
    keras_bce: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per block k the official per-output loss ``coordinate_loss`` + ``visibility_weight``·BCE
    (what Keras' multi-output loss sums) → (total (K,), coordinate part (K,), BCE part (K,)).

    output.pose[k] (…, J, D) is compared with batch["pose"][..., :D] under
    batch["pose_valid"][..., :D] (so z only counts where it is valid: 3D samples);
    the visibility logits of block k (``visibility_logits``) with batch["visible"] on the joints
    of ``_visibility_mask(batch, visibility_joints)``; with ``keras_bce`` (``loss.keras_bce``)
    the visibility probabilities through ``keras_visibility_bce`` instead, as the official code.
    """
    dim = output.pose[0].shape[-1]
    target, valid = batch["pose"][..., :dim], batch["pose_valid"][..., :dim]
    vis_target, vis_mask = batch["visible"], _visibility_mask(batch, visibility_joints)
    coords = torch.stack([coordinate_loss(p, target, valid, pose) for p in output.pose])  # (K,)
    if keras_bce:
        vis = [keras_visibility_bce(p, vis_target, vis_mask) for p in output.visibility]
    else:
        vis = [visibility_bce(z, vis_target, vis_mask) for z in visibility_logits(output)]
    vis = torch.stack(vis)  # (K,)
    return coords + visibility_weight * vis, coords, vis


def pose_loss(
    output: PoseOutput,
    batch: Mapping[str, Tensor],
    visibility_weight: float = 0.01,
    pose: str = "l1l2",
    visibility_joints: str = "annotated",
    keras_bce: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Intermediate supervision: the per-block losses of ``pose_block_losses`` summed over all K
    blocks (``pose``: ``loss.pose``, one of ``POSE_LOSSES``; ``visibility_joints``:
    ``loss.visibility_joints``, one of ``VISIBILITY_JOINTS``; ``keras_bce``: ``loss.keras_bce``).
    Returns (total, parts) with parts "pose" (Σ_k coordinate loss), "visibility" (Σ_k BCE,
    unweighted) and "pose_last" (the last block's coordinate loss, for logging).
    """
    per_block, coords, vis = pose_block_losses(
        output, batch, visibility_weight, pose, visibility_joints, keras_bce
    )
    parts = {"pose": coords.sum(), "visibility": vis.sum(), "pose_last": coords[-1].detach()}
    return per_block.sum(), parts


def action_loss(output: ActionOutput, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Σ over every prediction (pose-branch blocks, appearance blocks, aggregate) of the mean
    cross-entropy; labels (B,) int64 with −1 = no action label (ignored). ``label_smoothing`` ε:
    the targets are (1 − ε)·one-hot + ε/A (0: the paper's plain cross-entropy). An ensemble's
    pose blocks count the mean over its M members of the loss each would have alone (its
    ``pose_members``, not their mean logits: each member learns alone, an ensemble, not one wide
    network).

    Logits may carry extra leading dimensions (…, A) matching labels (…). A batch without any
    labelled sample gives 0 (with a graph, so that ``backward`` still works).
    """
    labels = labels.reshape(-1)
    count = (labels >= 0).sum().clamp(min=1)  # on the device: no host sync to test for none
    if output.pose_members is None:
        pose = [_summed_cross_entropy(z, labels, label_smoothing) for z in output.pose_branch]
    else:
        pose = [_members_cross_entropy(z, labels, label_smoothing) for z in output.pose_members]
    others = [
        *output.appearance_branch,
        *([output.aggregate] if output.aggregate is not None else []),
    ]
    losses = pose + [_summed_cross_entropy(z, labels, label_smoothing) for z in others]
    if not losses:
        raise ValueError("ActionOutput holds no prediction")
    return torch.stack(losses).sum() / count


def _summed_cross_entropy(logits: Tensor, labels: Tensor, label_smoothing: float) -> Tensor:
    """Σ of the cross-entropy over the labelled samples; logits (…, A) with labels (N,) flat."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels,
        ignore_index=-1,
        reduction="sum",
        label_smoothing=label_smoothing,
    )


def _members_cross_entropy(members: Tensor, labels: Tensor, label_smoothing: float) -> Tensor:
    """An ensemble's block: members (M, …, A), each member's logits (…, A) with labels (N,) flat
    → the mean over the M members of their ``_summed_cross_entropy``."""
    copies = members.shape[0]  # M: the members' axis
    return _summed_cross_entropy(members, labels.repeat(copies), label_smoothing) / copies
