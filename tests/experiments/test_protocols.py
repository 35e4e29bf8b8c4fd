"""Test-time protocols: multi-crop geometry and flip re-indexing, multi-clip scores, person box."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments import protocols as P

S = 32
# Two "joints": index 0 is the person's right (seen on the image's left half), 1 the left.
FLIP = [1, 0]


def spot_images(points: np.ndarray) -> torch.Tensor:
    """(B, 3, S, S) black images with a white pixel at every (x, y) of points (B, 2, 2)."""
    images = torch.full((len(points), 3, S, S), -1.0)
    for b, pts in enumerate(points):
        for x, y in pts:
            images[b, :, y, x] = 1.0
    return images


def anatomical_predictor(images: torch.Tensor):
    """Mimics a network under mirroring: the spot on the image's left half is joint 0 (right),
    the one on the right half joint 1; returns crop-normalised (pixel / S) positions."""
    lum = images[:, 0]
    halves = [lum[..., : S // 2], lum[..., S // 2 :]]
    out = []
    for offset, half in zip((0, S // 2), halves):
        flat = half.flatten(1).argmax(1)
        y, x = flat // half.shape[-1], flat % half.shape[-1] + offset
        out.append(torch.stack([x, y], -1).float() / S)
    pose = torch.stack(out, 1)  # (B, 2, 2)
    return torch.cat([pose, torch.full_like(pose[..., :1], 0.3)], -1), torch.ones(len(images), 2)


@pytest.fixture
def points() -> np.ndarray:
    return np.array([[[9, 12], [22, 17]], [[12, 20], [20, 10]]])  # none shifted onto x = S/2


def test_every_view_maps_back_to_the_crop(points):
    images = spot_images(points)
    truth = torch.from_numpy(points).float() / S
    for view in P.multi_crop_views(displacement=3):
        pose, _ = anatomical_predictor(P.apply_view(images, view))
        back = P.view_to_crop(pose, view, S, FLIP)
        torch.testing.assert_close(back[..., :2], truth, msg=str(view))
        assert torch.all(back[..., 2] == 0.3)


def test_multi_crop_averages_to_the_truth(points):
    pose, vis = P.multi_crop(anatomical_predictor, spot_images(points), FLIP,
                             P.multi_crop_views(displacement=2))  # fmt: skip
    torch.testing.assert_close(pose[..., :2], torch.from_numpy(points).float() / S)
    assert vis.shape == (2, 2)


def test_multi_crop_without_the_flip_permutation_is_wrong(points):
    views = [P.CropView(flip=True)]
    pose, _ = P.multi_crop(anatomical_predictor, spot_images(points), [0, 1], views)
    assert not torch.allclose(pose[..., :2], torch.from_numpy(points).float() / S)


def test_views_and_shift_fill():
    views = P.multi_crop_views(displacement=4)
    assert len(views) == 10 and views[0] == P.CropView()
    assert len(P.multi_crop_views(0, flip=False)) == 1
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    shifted = P.shift_images(img, 1, -1)
    assert shifted[0, 0, 0, 1] == img[0, 0, 1, 0] and torch.all(shifted[0, 0, :, 0] == P.BLACK)
    assert torch.all(shifted[0, 0, -1] == P.BLACK)


def test_multi_clip_indices_cover_the_video():
    idx = P.multi_clip_indices(40, 16)
    assert idx[0, 0] == 0 and idx[-1, -1] == 39
    assert np.all(np.diff(idx[:, 0])[:-1] == 8)
