"""THE crop mapping: original-image pixels ↔ crop-normalised [0, 1] coordinates.

A sample's ``crop`` (…, 2, 3) is the affine original pixels → crop pixels / S (built by
``datamodules.transforms.normalized_crop``); the network predicts in its [0, 1] frame. The data
layer encodes targets with ``to_crop``, evaluation and prediction decode with ``to_pixels``
(``deephar.metrics.encode_pose_px`` / ``decode_pose_px`` add full precision outside autocast).
``invert_affine`` (closed form) is the inverse the data layer composes stored crops with. Every
function takes NumPy arrays or torch tensors and returns the same kind.
Alphabet: J joints.
"""

from __future__ import annotations

import numpy as np
import torch


def apply_affine(matrix, points):
    """Map points (…, 2) through affine (…, 2, 3); works on NumPy arrays and torch tensors."""
    return (matrix[..., :2] @ points.swapaxes(-1, -2)).swapaxes(-1, -2) + matrix[..., None, :, 2]


def invert_affine(matrix):
    """(…, 2, 3) inverse of an affine (closed-form 2×2 inverse; NumPy or torch)."""
    a, b, tx = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    c, d, ty = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    rows = [
        [ia, ib, -(ia * tx + ib * ty)],
        [ic, id_, -(ic * tx + id_ * ty)],
    ]
    if isinstance(matrix, np.ndarray):
        return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def to_crop(points_px, crop):
    """Original pixels (…, J, 2) → crop-normalised coordinates through ``crop`` (…, 2, 3)."""
    return apply_affine(crop, points_px)


def to_pixels(points_norm, crop):
    """Crop-normalised predictions (…, J, 2) → original-image pixels (inverse of ``crop``)."""
    inv = torch.linalg.inv if isinstance(crop, torch.Tensor) else np.linalg.inv
    inverse = inv(crop[..., :2])  # (…, 2, 2)
    return (points_norm[..., :2] - crop[..., None, :, 2]) @ inverse.swapaxes(-1, -2)
