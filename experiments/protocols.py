"""Test-time protocols of the paper, as pure functions of a predictor and tensors.

Alphabet: B batch, T frames, J joints, D 2|3, S crop side, A actions, N clips, V videos, F frames.

- Multi-crop (pose): the centred crop plus small displacements, each also mirrored; every view's
  prediction is mapped back to the un-augmented crop — and through it to the original image, the
  two frames being one affine map apart, so the mean is the same in both — with the joints of a
  mirrored view re-indexed by the layout's flip permutation, then averaged (a 3D pose's depth
  over the unshifted views only: ``multi_crop``). Views are exact pixel
  operations on the sample's crop (integer shifts with black fill, ``torch.flip``): no resampling.
- Multi-clip (action): clips every T/2 frames (``datamodules.base.clip_indices(mode="multi")``),
  optionally with each clip's mirror; the scores are combined per video by the metric
  (``deephar.metrics.VideoAccuracy``: mean, or product as in the official Penn Action evaluation).
- The test-time person box of ``predict`` (poses on full frames give the crop) lives with the
  inference API: ``deephar.apis.person_box``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from datamodules.base import clip_indices

#: images (B, 3, S, S) → pose (B, J, D) crop-normalised and visibility (B, J)
PosePredictor = Callable[[Tensor], tuple[Tensor, Tensor]]
BLACK = -1.0  # a black pixel after normalisation to [−1, 1]


def pose_predictor(model: torch.nn.Module) -> PosePredictor:
    """The last prediction block of a pose network (``DeepHAR.forward_pose`` or ``PoseNet``)."""
    forward = getattr(model, "forward_pose", model)

    @torch.no_grad()
    def predict(images: Tensor) -> tuple[Tensor, Tensor]:
        out = forward(images)
        return out.pose[-1], out.visibility[-1]

    return predict


# ---- multi-crop ----
@dataclass(frozen=True)
class CropView:
    """One test-time view of a crop: content shifted by ``shift`` = (dx, dy) crop pixels, then
    mirrored horizontally when ``flip``."""

    shift: tuple[int, int] = (0, 0)
    flip: bool = False


def multi_crop_views(displacement: int = 8, flip: bool = True) -> list[CropView]:
    """Centred crop and the four ±``displacement`` pixel shifts, each with its mirror (10 views);
    ``displacement`` 0 leaves the centred crop (and its mirror)."""
    shifts = [(0, 0)]
    if displacement:
        d = int(displacement)
        shifts += [(d, 0), (-d, 0), (0, d), (0, -d)]
    flips = (False, True) if flip else (False,)
    return [CropView(s, f) for s in shifts for f in flips]


def shift_images(images: Tensor, dx: int, dy: int, fill: float = BLACK) -> Tensor:
    """(…, C, S, S) content moved by (dx, dy) pixels (right, down); uncovered pixels = ``fill``."""
    out = torch.full_like(images, fill)
    h, w = images.shape[-2:]
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = images[..., src_y, src_x]
    return out


def apply_view(images: Tensor, view: CropView) -> Tensor:
    """(…, C, S, S) → the view's images: shift, then mirror about the crop's centre S/2 — the
    training's mirror (``crop_matrix``: x ↦ S − x, the person's box centre stays at S/2), i.e.
    the pixel mirror (x ↦ S − 1 − x) moved one pixel right, column 0 black."""
    out = shift_images(images, *view.shift) if view.shift != (0, 0) else images
    return shift_images(out.flip(-1), 1, 0) if view.flip else out


def view_to_crop(pose: Tensor, view: CropView, size: int, flip_perm: Sequence[int]) -> Tensor:
    """Pose (…, J, D) predicted on a view → the same joints in the un-augmented crop's normalised
    frame (pixel p ↦ p/S; the mirror maps pixel p to S − p). z is re-indexed, not negated."""
    xy = pose[..., :2]
    if view.flip:
        xy = torch.stack([1.0 - xy[..., 0], xy[..., 1]], dim=-1)
        perm = torch.as_tensor(np.asarray(flip_perm), device=pose.device, dtype=torch.long)
        xy, pose = xy[..., perm, :], pose[..., perm, :]
    xy = xy - torch.tensor(view.shift, dtype=xy.dtype, device=xy.device) / size
    return torch.cat([xy, pose[..., 2:]], dim=-1)


def multi_crop(
    predict: PosePredictor,
    images: Tensor,
    flip_perm: Sequence[int],
    views: Sequence[CropView] = (CropView(),),
) -> tuple[Tensor, Tensor]:
    """Average pose (B, J, D) and visibility (B, J) over ``views`` of images (B, 3, S, S), in the
    frame of the un-augmented crop (so the sample's ``crop`` maps it to original pixels).

    x, y: the mean over every view; z (3D): the mean over the unshifted views (the crop and its
    mirror) only — the depth a network reads is not invariant to the shifts (Human3.6M trains
    without translations; measured in docs/evaluation.md)."""
    size = images.shape[-1]
    poses, vis = [], []
    for view in views:
        pose, visibility = predict(apply_view(images, view))
        poses.append(view_to_crop(pose, view, size, flip_perm))
        vis.append(visibility[..., list(flip_perm)] if view.flip else visibility)
    stacked = torch.stack(poses)  # (V, B, J, D)
    mean = stacked.mean(0)
    still = [view.shift == (0, 0) for view in views]
    if mean.shape[-1] == 3 and any(still) and not all(still):
        depth = stacked[torch.tensor(still, device=stacked.device)][..., 2:].mean(0)
        mean = torch.cat([mean[..., :2], depth], dim=-1)
    return mean, torch.stack(vis).mean(0)


# ---- multi-clip ----
def multi_clip_indices(
    num_frames: int, clip_length: int, subsample: int = 1, step: int | None = None
) -> np.ndarray:
    """(N, T) frame indices of clips every ``step`` (default T // 2) frames covering a video."""
    return clip_indices(num_frames, clip_length, "multi", subsample, step=step)


def clip_views(clips: Tensor, flip: bool = False) -> list[Tensor]:
    """(B, T, 3, S, S) → the clips, and their mirror when ``flip`` (official Penn multi-clip)."""
    return [clips, clips.flip(-1)] if flip else [clips]
