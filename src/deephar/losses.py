"""Training losses of the official code: elastic net on valid coordinates, visibility BCE, action CE.

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


def elastic_net(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Official pose loss: Σ(|Δ| + Δ²) over valid elements / max(1, count), averaged over samples.

    pred, target (…, J, D); valid (…, J, D) bool. The count is taken per sample (per frame for
    clips) as ``elasticnet_loss_on_valid_joints`` does. Invalid elements contribute nothing, even
    when their target holds NaN or garbage.
    """
    _check_same_shape(pred=pred, target=target, valid=valid)
    valid = valid.bool()
    delta = torch.where(valid, pred - target, torch.zeros((), dtype=pred.dtype))
    per_element = delta.abs() + delta.square()  # (…, J, D)
    return masked_sample_mean(per_element.flatten(0, -3), valid.flatten(0, -3))


def visibility_bce(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of visibility logits (…, J) on masked joints (per-sample mean), from
    logits in fp32: safe under autocast (CUDA refuses ``binary_cross_entropy`` on probabilities)
    and without the saturation of a low-precision sigmoid."""
    _check_same_shape(logits=logits, target=target, mask=mask)
    bce = F.binary_cross_entropy_with_logits(
        logits.float(), target.float(), reduction="none"
    )  # (…, J)
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


def _visibility_mask(batch: Mapping[str, Tensor]) -> Tensor:
    """Joints whose visibility target is known: annotated ones (``pose_px_valid``).

    The target is 1 iff the joint is inside the crop, so an annotated joint outside the crop is a
    genuine negative; only unannotated joints are left out. Without ``pose_px_valid`` the joints
    valid in x and y are used.
    """
    if "pose_px_valid" in batch:
        return batch["pose_px_valid"].bool()
    return batch["pose_valid"][..., :2].all(-1)


def pose_loss(
    output: PoseOutput, batch: Mapping[str, Tensor], visibility_weight: float = 0.01
) -> tuple[Tensor, dict[str, Tensor]]:
    """Intermediate supervision: elastic net + ``visibility_weight``·BCE summed over all K blocks.

    output.pose[k] (…, J, D) is compared with batch["pose"][..., :D] under
    batch["pose_valid"][..., :D] (so z only counts where it is valid: 3D samples);
    the visibility logits of block k (``visibility_logits``) with batch["visible"] on annotated
    joints (see ``_visibility_mask``).
    Returns (total, parts) with parts "pose" (Σ_k elastic net), "visibility" (Σ_k BCE, unweighted)
    and "pose_last" (the last block's elastic net, for logging).
    """
    dim = output.pose[0].shape[-1]
    target, valid = batch["pose"][..., :dim], batch["pose_valid"][..., :dim]
    vis_target, vis_mask = batch["visible"], _visibility_mask(batch)
    per_block = torch.stack([elastic_net(p, target, valid) for p in output.pose])  # (K,)
    vis = torch.stack([visibility_bce(z, vis_target, vis_mask) for z in visibility_logits(output)])
    parts = {"pose": per_block.sum(), "visibility": vis.sum(), "pose_last": per_block[-1].detach()}
    return parts["pose"] + visibility_weight * parts["visibility"], parts


def action_loss(output: ActionOutput, labels: Tensor) -> Tensor:
    """Σ over every prediction (pose-branch blocks, appearance blocks, aggregate) of the mean
    cross-entropy; labels (B,) int64 with −1 = no action label (ignored).

    Logits may carry extra leading dimensions (…, A) matching labels (…). A batch without any
    labelled sample gives 0 (with a graph, so that ``backward`` still works).
    """
    logits = output.all_logits
    if not logits:
        raise ValueError("ActionOutput holds no prediction")
    labels = labels.reshape(-1)
    if not (labels >= 0).any():
        return sum(z.sum() for z in logits) * 0.0
    losses = [F.cross_entropy(z.reshape(-1, z.shape[-1]), labels, ignore_index=-1) for z in logits]
    return torch.stack(losses).sum()
