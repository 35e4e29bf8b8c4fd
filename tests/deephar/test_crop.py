"""One crop mapping, original pixels ↔ crop-normalised [0, 1]: a round trip on NumPy and torch,
and the data layer's targets and the metrics' decoding go through these very functions."""

from __future__ import annotations

import numpy as np
import torch

from datamodules import transforms
from deephar import crop as C
from deephar.metrics import decode_pose_px, encode_pose_px


def some_crops(n: int = 50, seed: int = 0) -> np.ndarray:
    """(n, 2, 3) sample ``crop`` entries: rotated, scaled, flipped, shifted boxes of a 256² input."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        params = transforms.AugmentParams(
            angle=float(rng.uniform(-40, 40)), scale=float(rng.choice([0.7, 1.0, 1.3])),
            flip=bool(rng.random() < 0.5), shift=tuple(rng.uniform(-40, 40, 2)),
        )  # fmt: skip
        matrix = transforms.crop_matrix(rng.uniform(0, 1000, 2), rng.uniform(50, 800), 256, params)
        crops.append(transforms.normalized_crop(matrix, 256))
    return np.stack(crops)


def test_round_trip_on_numpy_and_torch():
    crop = some_crops().astype(np.float64)
    px = np.random.default_rng(1).uniform(0, 1000, (len(crop), 16, 2))
    np.testing.assert_allclose(C.to_pixels(C.to_crop(px, crop), crop), px, atol=1e-9)
    back = C.to_pixels(
        C.to_crop(torch.from_numpy(px), torch.from_numpy(crop)), torch.from_numpy(crop)
    )
    assert isinstance(back, torch.Tensor) and torch.allclose(back, torch.from_numpy(px), atol=1e-9)


def test_the_centre_of_the_box_is_the_centre_of_the_crop():
    matrix = transforms.crop_matrix(np.array([300.0, 200.0]), 120.0, 64)
    centre = C.to_crop(np.array([[300.0, 200.0]]), transforms.normalized_crop(matrix, 64))
    np.testing.assert_allclose(centre, [[0.5, 0.5]], atol=1e-6)


def test_data_layer_and_metrics_use_the_one_mapping():
    assert transforms.to_crop is C.to_crop and transforms.to_pixels is C.to_pixels
    crop = torch.from_numpy(some_crops())  # float32, as in a batch
    norm = torch.rand(len(crop), 16, 3)
    assert torch.equal(decode_pose_px(norm, crop), C.to_pixels(norm[..., :2], crop))
    px = torch.rand(len(crop), 16, 2) * 1000
    assert torch.equal(encode_pose_px(px, crop), C.to_crop(px, crop))
