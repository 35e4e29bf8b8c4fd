"""Multi-crop on 3D poses, through the real crop code: a mirrored and shifted view of a known 3D
pose, predicted perfectly, decodes back to that very pose in millimetres.

A view (``protocols.apply_view``) is a pixel operation on the sample's crop; the same view is also
a crop of the original frame by ``datamodules.transforms.crop_sample`` with ``AugmentParams``
(the training's mirror about S/2, p ↦ S − p, and a shift). The oracle "network" answers the targets of that crop (x, y of
the view, z re-indexed by the flip permutation, not negated: a mirror keeps depths)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.layouts import get_layout
from datamodules.transforms import (
    REFERENCE_CROP,
    AugmentParams,
    clip_box,
    crop_sample,
    depth_range,
)
from deephar.images import image_to_float
from deephar.metrics import decode_pose_mm
from experiments import protocols as P

S = 64
CAMERA = np.array([1150.0, 1140.0, 160.0, 125.0])  # fx, fy, cx, cy


def known_pose(seed: int = 0):
    """A 3D pose (J, 3) mm in front of the camera, its pixel + normalised-depth joints (J, 3)
    and the sample's depth (origin, range), in the pa20j layout."""
    rng = np.random.default_rng(seed)
    lay = get_layout("pa20j")
    pose_mm = rng.normal(0.0, 250.0, (len(lay), 3)) + np.array([60.0, -40.0, 4800.0])
    uv = CAMERA[:2] * pose_mm[:, :2] / pose_mm[:, 2:] + CAMERA[2:]
    root = lay.index("pelvis")
    origin, span = depth_range(pose_mm[root, 2])
    joints = np.concatenate([uv, (pose_mm[:, 2:] - origin) / span], axis=-1)
    return lay, pose_mm, joints, np.array([origin, span])


def view_params(view: P.CropView) -> AugmentParams:
    """The crop augmentation that shows the frame as ``view`` shows the centred crop."""
    dx, dy = view.shift
    tx = -dx if view.flip else dx  # S − (p + dx) = (S − p) − dx
    scale = REFERENCE_CROP / S  # AugmentParams.shift is in pixels of a 256² crop
    return AugmentParams(flip=view.flip, shift=(tx * scale, dy * scale))


@pytest.mark.parametrize("view", P.multi_crop_views(displacement=3), ids=str)
def test_a_mirrored_shifted_view_decodes_back_to_the_pose(view):
    lay, pose_mm, joints, depth = known_pose()
    frame = np.random.default_rng(1).integers(0, 256, (250, 320, 3), dtype=np.uint8)
    valid = np.ones(len(lay), dtype=bool)
    center, window = clip_box(joints[None, :, :2], valid[None], frame.shape[:2])
    centred = crop_sample(frame, joints, valid, center, window, S, lay.flip)
    seen = crop_sample(frame, joints, valid, center, window, S, lay.flip, view_params(view))
    assert centred["pose_valid"].all() and seen["pose_valid"].all()  # every joint in both crops

    # the view's pixels are the real crop's wherever the shift uncovered nothing
    image = image_to_float(torch.from_numpy(centred["image"]))[None]
    shown = P.apply_view(image, view)[0]
    real = image_to_float(torch.from_numpy(seen["image"]))
    covered = P.apply_view(torch.ones_like(image), view)[0] == 1.0  # not uncovered by the shift
    assert covered.float().mean() > 0.8
    torch.testing.assert_close(shown[covered], real[covered], atol=0.0, rtol=0.0)

    oracle = torch.from_numpy(seen["pose"])[None]  # what a perfect network answers on the view
    back = P.view_to_crop(oracle, view, S, lay.flip)
    torch.testing.assert_close(back[0], torch.from_numpy(centred["pose"]), atol=1e-6, rtol=0)
    crop = torch.from_numpy(centred["crop"])[None]
    mm = decode_pose_mm(
        back.double(), crop.double(), torch.from_numpy(depth)[None], torch.from_numpy(CAMERA)[None]
    )
    torch.testing.assert_close(mm[0], torch.from_numpy(pose_mm), atol=1e-2, rtol=0)


def test_multi_crop_takes_depth_from_the_unshifted_views_only():
    """x, y: the mean of every view; z: of the crop and its mirror (a shifted view's depth is
    what the network reads off a crop it never trained on)."""
    views = P.multi_crop_views(displacement=2)
    images = torch.zeros(1, 3, 8, 8)

    def shift_biased(batch):  # z = 0.5 on unshifted views; x, y at the crop's centre
        moved = (batch[0, 0] == P.BLACK).sum() > 8  # a shift's black strip (the mirror: 1 column)
        pose = torch.tensor([[[0.4375, 0.4375, 0.9 if moved else 0.5]]])
        return pose, torch.ones(1, 1)

    pose, _ = P.multi_crop(shift_biased, images, [0], views)
    assert pose[0, 0, 2] == pytest.approx(0.5)  # the shifted views' 0.9 left out
    xy = torch.stack(
        [P.view_to_crop(shift_biased(P.apply_view(images, v))[0], v, 8, [0]) for v in views]
    )[..., :2].mean(0)
    torch.testing.assert_close(pose[..., :2], xy)
