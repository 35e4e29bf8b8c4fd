"""The test-time person box: poses predicted on full frames (first, middle, last of a clip) give
the crop, by the same rule as the datasets' annotated boxes (``datamodules.transforms.clip_box``).

Alphabet: B batch, F frames, J joints, D 2|3, S crop side, H×W frame size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from datamodules.transforms import (
    clip_box,
    crop_matrix,
    normalize_image,
    normalized_crop,
    to_pixels,
    warp,
)

#: images (B, 3, S, S) → pose (B, J, D) crop-normalised and visibility (B, J), on the host
PosePredictor = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class PersonBox:
    """Centre (2,) in pixels and the square window's side (px)."""

    centre: np.ndarray
    side: float


def host_pose_predictor(model: nn.Module) -> PosePredictor:
    """The last prediction block of a pose network (``DeepHAR.forward_pose`` or ``PoseNet``):
    images go to the model's device, pose and visibility come back with ``.cpu()``."""
    forward = getattr(model, "forward_pose", model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    @torch.no_grad()
    def predict(images: Tensor) -> tuple[Tensor, Tensor]:
        out = forward(images.to(device))
        return out.pose[-1].cpu(), out.visibility[-1].cpu()

    return predict


def full_frame_matrix(image_hw: tuple[int, int], size: int) -> np.ndarray:
    """(2, 3) affine original pixels → S×S crop pixels of the whole (letter-boxed) frame."""
    h, w = image_hw
    return crop_matrix(np.array([(w - 1) / 2.0, (h - 1) / 2.0]), float(max(h, w)), size)


def predict_full_frames(
    predict: PosePredictor, frames: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pose in original pixels (F, J, 2) and visibility (F, J) from uint8 frames (F, H, W, 3)
    seen whole (the first step of the paper's test-time protocol)."""
    matrix = full_frame_matrix(frames.shape[1:3], size)
    images = torch.from_numpy(normalize_image(warp(frames, matrix, size)))
    pose, vis = predict(images)
    crop = torch.from_numpy(normalized_crop(matrix, size)).to(pose)
    return to_pixels(pose[..., :2], crop).cpu().numpy(), vis.cpu().numpy()


def person_box(
    predict: PosePredictor, frames: np.ndarray, size: int, threshold: float = 0.5
) -> PersonBox:
    """The person's box in a clip of uint8 frames (T, H, W, 3): joints predicted on the full
    first, middle and last frames, those with visibility ≥ ``threshold`` boxed, ×1.5, squared
    (``datamodules.transforms.clip_box``)."""
    keys = np.unique([0, len(frames) // 2, len(frames) - 1])
    pose_px, vis = predict_full_frames(predict, frames[keys], size)
    centre, side = clip_box(pose_px, vis >= threshold, frames.shape[1:3])
    return PersonBox(np.asarray(centre), float(side))
