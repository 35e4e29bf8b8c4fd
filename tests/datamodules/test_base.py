"""Robust loading, clip sampling and image reading of datamodules.base."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import (
    RobustDataset,
    SampleReadError,
    clip_indices,
    decode_jpeg_scaled,
    read_image,
    to_tensors,
)


class Flaky(Dataset):
    """Items are their index; indices in ``bad`` raise like a corrupt file would."""

    def __init__(self, n: int, bad: set[int]):
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if i in self.bad:
            raise SampleReadError(f"/data/img_{i}.jpg", "truncated")
        return i


def test_corrupt_sample_is_replaced_logged_and_counted(caplog):
    data = RobustDataset(Flaky(6, {2, 3}))
    with caplog.at_level(logging.WARNING):
        items = [data[i] for i in range(6)]
    assert items[:2] == [0, 1] and items[4:] == [4, 5]
    assert items[2] not in {2, 3} and items[3] not in {2, 3}  # replaced by good samples
    assert items == [RobustDataset(Flaky(6, {2, 3}))[i] for i in range(6)]  # seeded: the same
    assert data.num_failures >= 2 and data.num_loads == 6 + data.num_failures
    assert "/data/img_2.jpg" in caplog.text and "truncated" in caplog.text


def test_replacement_skips_known_bad_samples_and_gives_up():
    assert RobustDataset(Flaky(3, {2}))[2] in {0, 1}
    with pytest.raises(RuntimeError, match="data is broken") as info:
        RobustDataset(Flaky(10, set(range(10))), max_attempts=4)[0]
    assert "img_" in str(info.value.__cause__)


def test_code_errors_are_not_swallowed():
    class Buggy(Flaky):
        def __getitem__(self, i):
            raise TypeError("a bug, not a corrupt file")

    with pytest.raises(TypeError):
        RobustDataset(Buggy(3, set()))[0]


def test_failures_counted_across_workers():
    data = RobustDataset(Flaky(8, {1, 5}))
    items = torch.cat(list(DataLoader(data, batch_size=2, num_workers=2))).tolist()
    assert len(items) == 8 and not set(items) & {1, 5}
    assert data.num_failures >= 2 and data.num_loads == 8 + data.num_failures
    assert len(data) == 8 and data.bad == {1, 5}  # attributes forwarded


def test_clip_indices_modes():
    rng = np.random.default_rng(0)
    rand = clip_indices(50, 8, "random", subsample=2, rng=rng)
    assert rand.shape == (1, 8) and rand.max() < 50
    np.testing.assert_array_equal(np.diff(rand[0]), 2)
    middle = clip_indices(50, 8, "middle", subsample=2)
    span = 7 * 2 + 1
    assert middle[0, 0] == (50 - span) // 2
    multi = clip_indices(50, 8, "multi")
    np.testing.assert_array_equal(multi[:, 0], [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 42])
    assert multi[-1, -1] == 49
    assert clip_indices(50, 8, "multi", step=20)[:, 0].tolist() == [0, 20, 40, 42]


def test_short_video_is_stretched():
    for mode in ("random", "middle", "multi"):
        clip = clip_indices(5, 16, mode, subsample=2, rng=np.random.default_rng(1))
        assert clip.shape == (1, 16)
        assert clip[0, 0] == 0 and clip[0, -1] == 4
        assert np.all(np.diff(clip[0]) >= 0) and set(clip[0]) == set(range(5))


def test_clip_indices_bad_input():
    with pytest.raises(ValueError, match="mode"):
        clip_indices(20, 4, "everything")
    with pytest.raises(ValueError, match="frame"):
        clip_indices(0, 4, "middle")


def test_read_image_rgb_and_clear_errors(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    rgb = read_image(tmp_path / "a.png")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 2] == 200 and rgb[0, 0, 0] == 0
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(SampleReadError, match="broken.jpg"):
        read_image(tmp_path / "broken.jpg")


@pytest.mark.parametrize(("reduce", "flag"), [(1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2),
                                              (4, cv2.IMREAD_REDUCED_COLOR_4),
                                              (8, cv2.IMREAD_REDUCED_COLOR_8)])  # fmt: skip
@pytest.mark.parametrize("shape", [(61, 83, 3), (48, 64, 1)])
def test_jpeg_decode_gives_opencvs_pixels_at_every_scale(reduce, flag, shape):
    """libjpeg-turbo's SIMD decode (simplejpeg) = OpenCV's, pixel for pixel, full or DCT-scaled
    to ceil(H / r) × ceil(W / r), colour or grey (4:2:0 chroma, odd sizes)."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, shape, np.uint8), (5, 5), 0)
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    ours = decode_jpeg_scaled(data, reduce)
    theirs = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), flag), cv2.COLOR_BGR2RGB)
    assert ours.shape == (-(-shape[0] // reduce), -(-shape[1] // reduce), 3) == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_jpeg_decode_declines_what_it_cannot_read():
    png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    assert decode_jpeg_scaled(png) is None  # not a JPEG: OpenCV's decode takes it
    assert decode_jpeg_scaled(b"\xff\xd8 not a jpeg", 2) is None


def test_to_tensors_dtypes():
    out = to_tensors({"a": np.zeros(3, np.float32), "action": np.int64(-1), "name": "x"})
    assert out["a"].dtype == torch.float32 and out["action"].dtype == torch.int64
    assert out["name"] == "x"
