"""Crop geometry, augmentation and the masking rules of datamodules.transforms."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from datamodules.layouts import PA16J
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    apply_affine,
    crop_matrix,
    crop_sample,
    normalize_image,
    normalized_crop,
    pose_targets,
    to_crop,
    to_pixels,
)

S = 64


def blob_image(h: int, w: int, x: float, y: float, sigma: float = 1.5) -> np.ndarray:
    """uint8 (h, w, 3) black image with a bright Gaussian dot centred at pixel (x, y)."""
    yy, xx = np.mgrid[0:h, 0:w]
    dot = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((255 * dot).astype(np.uint8)[..., None], 3, axis=-1)


def test_flip_swaps_and_mirrors_joints():
    rng = np.random.default_rng(0)
    joints = rng.uniform(80, 120, (16, 2))
    valid = np.ones(16, bool)
    center, window = np.array([100.0, 100.0]), 100.0
    out = crop_sample(None, joints, valid, center, window, S, PA16J.flip, AugmentParams(flip=True))
    # Mirror about the crop centre: u = 0.5 − (x − cx)/w, v = 0.5 + (y − cy)/w.
    mirrored = np.stack(
        [0.5 - (joints[:, 0] - 100) / window, 0.5 + (joints[:, 1] - 100) / window], -1
    )
    r_wrist, l_wrist = PA16J.index("r_wrist"), PA16J.index("l_wrist")
    np.testing.assert_allclose(out["pose"][r_wrist, :2], mirrored[l_wrist], atol=1e-5)
    np.testing.assert_allclose(out["pose"][l_wrist, :2], mirrored[r_wrist], atol=1e-5)
    np.testing.assert_allclose(out["pose"][:, :2], mirrored[PA16J.flip], atol=1e-5)
    np.testing.assert_allclose(out["pose_px"], joints[PA16J.flip], atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_augmented_dot_lands_on_its_joint(seed: int):
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    x, y = rng.uniform(60, 100), rng.uniform(40, 80)
    image = blob_image(h, w, x, y)
    joints = np.array([[x, y]] + [[0.0, 0.0]] * 15)
    valid = np.array([True] + [False] * 15)
    ranges = AugmentRanges(angle=40, scales=(0.7, 1.0, 1.3), translate=8, chpower=None)
    params = ranges.sample(rng)
    center = np.array([x, y]) + rng.uniform(-10, 10, 2)
    out = crop_sample(image, joints, valid, center, 80.0, S, PA16J.flip, params)
    crop = out["image"][0]  # (S, S): first channel
    peak = np.unravel_index(np.argmax(crop), crop.shape)[::-1]
    j = PA16J.flip[0] if params.flip else 0
    assert out["pose_valid"][j, :2].all()
    np.testing.assert_allclose(np.array(peak), out["pose"][j, :2] * S, atol=1.5)


def test_crop_round_trip_numpy_and_torch():
    rng = np.random.default_rng(1)
    params = AugmentParams(angle=25.0, scale=1.3, flip=True, shift=(7.0, -4.0))
    crop = normalized_crop(crop_matrix([210.0, 140.0], 150.0, 256, params), 256)
    points = rng.uniform(0, 400, (3, 16, 2))
    norm = to_crop(points, crop.astype(np.float64))
    np.testing.assert_allclose(to_pixels(norm, crop.astype(np.float64)), points, atol=1e-3)
    back = to_pixels(torch.from_numpy(norm).float(), torch.from_numpy(crop)[None])
    np.testing.assert_allclose(back.numpy(), points, atol=1e-2)


def test_crop_centre_maps_to_half():
    crop = normalized_crop(crop_matrix([50.0, 70.0], 40.0, S, AugmentParams(angle=33.0)), S)
    np.testing.assert_allclose(to_crop(np.array([[50.0, 70.0]]), crop), [[0.5, 0.5]], atol=1e-6)


def test_out_of_crop_joints_are_invalid():
    joints = np.array([[100.0, 100.0], [300.0, 100.0], [100.0, -5.0]])
    crop = normalized_crop(crop_matrix([100.0, 100.0], 100.0, S), S)
    pose, pose_valid, visible = pose_targets(joints, np.array([True, True, False]), crop)
    np.testing.assert_array_equal(pose_valid[:, 0], [True, False, False])
    np.testing.assert_array_equal(visible, [1.0, 0.0, 0.0])
    assert not pose_valid[:, 2].any()  # 2D sample: z never valid
    np.testing.assert_array_equal(pose[1:], 0.0)


def test_z_validity_rules():
    joints = np.array([[100.0, 100.0, 0.4], [100.0, 100.0, -0.1], [900.0, 100.0, 0.5]])
    crop = normalized_crop(crop_matrix([100.0, 100.0], 100.0, S), S)
    pose, pose_valid, _ = pose_targets(joints, np.ones(3, bool), crop)
    np.testing.assert_array_equal(pose_valid[:, 2], [True, False, False])
    assert pose[0, 2] == pytest.approx(0.4)


def test_normalize_image_range_and_chpower():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    out = normalize_image(image)
    assert out.shape == (3, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [-1.0, 128 / 255 * 2 - 1, 1.0], atol=1e-6)
    gamma = normalize_image(image, chpower=(1.1, 1.1, 0.9))
    assert gamma[1, 0, 0] == pytest.approx(((128 / 255) ** 1.1 - 0.5) * 2, abs=1e-6)
    assert gamma[2, 0, 0] == pytest.approx(1.0)  # 1^γ stays 1


def test_clip_gets_one_transform_for_all_frames():
    rng = np.random.default_rng(3)
    frame = blob_image(90, 90, 40.0, 50.0)
    frames = np.stack([frame] * 3)
    joints = np.tile(np.array([[40.0, 50.0]] * 16), (3, 1, 1))
    params = AugmentRanges(angle=30, scales=(0.7, 1.3), translate=10).sample(rng)
    out = crop_sample(frames, joints, np.ones((3, 16), bool), [45.0, 45.0], 80.0, S,
                      PA16J.flip, params)  # fmt: skip
    assert out["image"].shape == (3, 3, S, S) and out["crop"].shape == (3, 2, 3)
    np.testing.assert_array_equal(out["image"][0], out["image"][2])
    np.testing.assert_array_equal(out["pose"][0], out["pose"][1])


def test_augment_ranges_sample_within_bounds():
    rng = np.random.default_rng(4)
    ranges = AugmentRanges(angle=10, scales=(0.8, 1.2), translate=5, chpower=(0.9, 1.1))
    draws = [ranges.sample(rng) for _ in range(200)]
    assert all(abs(p.angle) <= 10 and p.scale in (0.8, 1.2) for p in draws)
    assert all(max(map(abs, p.shift)) <= 5 for p in draws)
    assert all(0.9 <= g <= 1.1 for p in draws for g in p.chpower)
    assert 0 < sum(p.flip for p in draws) < 200
    assert not any(AugmentRanges(flip=False).sample(rng).flip for _ in range(20))


def test_positive_angle_turns_counter_clockwise_on_screen():
    crop = normalized_crop(crop_matrix([0.0, 0.0], 100.0, S, AugmentParams(angle=90.0)), S)
    right_of_centre = np.array([[25.0, 0.0]])
    np.testing.assert_allclose(to_crop(right_of_centre, crop), [[0.5, 0.25]], atol=1e-6)


def test_translation_is_the_same_fraction_of_the_crop_at_any_input_size():
    """``translate`` is given in pixels of a 256² crop (official ranges) and scales with the crop."""
    params = AugmentParams(shift=(40.0, -20.0))
    centre = np.array([[100.0, 80.0]])
    for size in (64, 128, 256):
        moved = apply_affine(crop_matrix(centre[0], 50.0, size, params), centre) / size
        np.testing.assert_allclose(moved[0], [0.5 + 40 / 256, 0.5 - 20 / 256], atol=1e-9)


# ---- photometric augmentation (albumentations) ----
def test_photometric_is_one_draw_for_every_frame_and_leaves_geometry_alone():
    from datamodules.transforms import AugmentRanges, Photometric, crop_sample

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    clip = np.repeat(frame[None], 4, axis=0)  # (T, H, W, 3), identical frames
    joints = np.tile(np.array([[20.0, 20.0], [40.0, 30.0]]), (4, 1, 1))
    valid = np.ones((4, 2), bool)
    ranges = AugmentRanges(chpower=None, flip=False,
                           photometric={"brightness": 0.4, "contrast": 0.4, "noise": 0.05})  # fmt: skip
    assert isinstance(ranges.photometric, Photometric) and ranges.photometric.active
    params = ranges.sample(np.random.default_rng(1))
    assert params.photometric is ranges.photometric
    args = (joints, valid, (32.0, 24.0), 48.0, 32, np.array([0, 1]))
    plain = crop_sample(clip, *args, params=replace(params, photometric=None))
    jittered = crop_sample(clip, *args, params=params)
    again = crop_sample(clip, *args, params=params)
    image = jittered["image"]  # (T, 3, S, S)
    assert all(np.array_equal(image[0], image[t]) for t in range(4))  # same draw per frame
    assert np.abs(image - plain["image"]).mean() > 0.01  # and it did change the pixels
    np.testing.assert_array_equal(image, again["image"])  # the draw is the sample's seed
    for key in ("pose", "pose_valid", "crop", "pose_px"):
        np.testing.assert_array_equal(jittered[key], plain[key])


def test_without_photometric_the_random_stream_is_unchanged():
    from datamodules.transforms import AugmentRanges

    off = AugmentRanges(angle=30.0, translate=40.0).sample(np.random.default_rng(3))
    zero = AugmentRanges(angle=30.0, translate=40.0, photometric={"blur": 0.0})
    assert zero.sample(np.random.default_rng(3)) == off and off.photometric is None


def test_augment_ranges_of_a_readers_aug_argument():
    from datamodules.transforms import augment_ranges

    default = AugmentRanges(angle=40.0, scales=(0.7, 1.0, 1.3))
    assert augment_ranges(None, default) is default
    mine = AugmentRanges(angle=5.0)
    assert augment_ranges(mine, default) is mine
    assert augment_ranges({"angle": 10.0, "scales": [0.9, 1.1]}, default) == AugmentRanges(
        angle=10.0, scales=[0.9, 1.1]
    )
    assert augment_ranges({}, default) == AugmentRanges()  # a config's empty dict: no default
