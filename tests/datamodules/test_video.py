"""VideoReader: decord behind one interface, frames folders, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from datamodules.base import SampleReadError
from datamodules.video import VideoReader

W, H, N = 64, 48, 30


def frame_value(i: int) -> int:
    return 8 * i


def write_video(path: Path, n: int = N, codec: str = "mpeg4", fps: int = 25) -> Path:
    """Grey frames of value 8·i (+ a white square moving right) encoded with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            img = np.full((H, W, 3), frame_value(i), np.uint8)
            img[8:16, i : i + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi")


def test_video_metadata_and_batched_read(video):
    vr = VideoReader(video)
    assert (vr.num_frames, len(vr), vr.size, vr.fps) == (N, N, (W, H), 25.0)
    idx = [17, 3, 3, 29]
    frames = vr.read(idx)
    assert frames.shape == (4, H, W, 3) and frames.dtype == np.uint8
    background = frames[:, 30:, :, :].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(background, [frame_value(i) for i in idx], atol=4)
    np.testing.assert_array_equal(frames[1], frames[2])


def test_frames_folder_is_one_based_and_may_be_sparse(tmp_path, video):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = VideoReader(video).read(range(N))
    for i in range(0, N, 5):  # only every 5th frame extracted, 1-based names
        cv2.imwrite(str(folder / f"{i + 1:05d}.png"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
    vr = VideoReader(folder)
    assert vr.num_frames == N - 4 and vr.size == (W, H) and vr.fps is None
    np.testing.assert_array_equal(vr.read([10, 0]), frames[[10, 0]])
    with pytest.raises(FileNotFoundError, match="00012|file number 12"):
        vr.read([11])


def test_missing_video_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        VideoReader(tmp_path / "nope.mp4")


def test_out_of_range_frame(video):
    with pytest.raises(IndexError, match="clip.avi"):
        VideoReader(video).read([N])


@pytest.mark.parametrize("codec,suffix", [("mpeg4", ".avi"), ("libx264", ".mp4")])
def test_truncated_video_is_a_clear_error(tmp_path, codec, suffix):
    full = write_video(tmp_path / f"full{suffix}", codec=codec)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(SampleReadError, match=f"cut{suffix}"):
        VideoReader(cut).read(range(N))


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SampleReadError, match="bad.mp4"):
        VideoReader(bad)


def test_real_ntu_video(samples_dir):
    vr = VideoReader(samples_dir / "ntu" / "S001C001P001R001A001_rgb.avi")
    assert (vr.num_frames, vr.size) == (103, (1920, 1080))
    assert vr.fps == pytest.approx(30.0)
    frames = vr.read([0, 102])
    assert frames.shape == (2, 1080, 1920, 3) and frames.std() > 10
