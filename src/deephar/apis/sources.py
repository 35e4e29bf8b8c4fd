"""Frame sources: a video file, a frames folder, an image file or a NumPy array, read as a stream of
decoded chunks (downscaled so that max(H, W) ≤ ``decode_size``), never whole.

A source knows its frame count, fps and decoded size before any frame is read (the clip protocol
plans its clips from the count), and can be streamed again (the renderer's second pass). Inputs
that cannot hold a person (decoded smaller side below ``MIN_SIDE``) are refused with
``InputTooSmall``, naming the input and its size.
Alphabet: F frames, H×W frame size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datamodules.base import SampleReadError, read_image
from datamodules.video import VideoReader

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MIN_SIDE = 32  # px: a person smaller than this cannot be posed (a fifth of a 160 px crop)
CHUNK = 8  # frames batched at once (the window holds T + 2 chunks)


class InputError(ValueError):
    """An input the predictor refuses: one line naming the input and the problem."""


class InputTooSmall(InputError):
    """Frames too small to hold a person."""


@dataclass(frozen=True)
class SourceInfo:
    """``name``: the input as given (a path or ``array``); ``num_frames`` F; ``fps`` (None for
    an image, a folder or an array); ``size`` (W, H) of the decoded frames; ``still``: an image,
    posed only (no action)."""

    name: str
    num_frames: int
    fps: float | None
    size: tuple[int, int]
    still: bool


def decoded_size(w: int, h: int, decode_size: int) -> tuple[int, int]:
    """(W, H) after downscaling so that max(W, H) ≤ ``decode_size`` (0: no downscaling)."""
    scale = decode_size / max(h, w) if decode_size else 1.0
    if scale >= 1.0:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def downscale(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (F, H, W, 3) resized (area) to ``size`` (W, H); the same array when it fits."""
    if frames.shape[2] == size[0] and frames.shape[1] == size[1]:
        return frames
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


class FrameSource:
    """Decoded uint8 RGB frames in order, chunk by chunk: ``info``, ``chunks()``."""

    info: SourceInfo

    def _frames(self) -> Iterator[np.ndarray]:
        """uint8 (H, W, 3) frames at their original size, one by one."""
        raise NotImplementedError

    def chunks(self) -> Iterator[np.ndarray]:
        """uint8 (≤ CHUNK, H, W, 3) frames at the decoded size, from the first to the last; each
        frame is downscaled as it is decoded (full-size frames are never batched)."""
        batch = []
        for frame in self._frames():
            batch.append(downscale(frame[None], self.info.size)[0])
            if len(batch) == CHUNK:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    def _check(self, original: tuple[int, int]) -> None:
        w, h = self.info.size
        if min(w, h) < MIN_SIDE:
            shown = f"{original[0]}×{original[1]} px"
            if original != (w, h):
                shown += f" (decoded to {w}×{h})"
            raise InputTooSmall(
                f"{self.info.name}: {shown} is too small to hold a person "
                f"(the smaller side must be ≥ {MIN_SIDE} px)"
            )


class VideoSource(FrameSource):
    """A video file or a frames folder (``datamodules.video.VideoReader``)."""

    def __init__(self, path: Path, decode_size: int):
        self.reader = VideoReader(path)
        w, h = self.reader.size
        size = decoded_size(w, h, decode_size)
        self.info = SourceInfo(str(path), len(self.reader), self.reader.fps, size, still=False)
        self._check((w, h))

    def _frames(self) -> Iterator[np.ndarray]:
        if self.reader.path.is_dir():
            for index in range(len(self.reader)):
                yield self.reader.read([index])[0]
        else:
            yield from stream_video(self.reader.path, len(self.reader))


def stream_video(path: Path, count: int) -> Iterator[np.ndarray]:
    """The first ``count`` frames of a video file, uint8 (H, W, 3), decoded in order by PyAV
    (decord's ``get_batch`` keeps memory that grows with the frames read);
    ``SampleReadError`` when fewer can be decoded."""
    import av

    done = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")
            done += 1
            if done == count:
                return
    raise SampleReadError(path, f"only {done} of its {count} frames could be decoded")


class ArraySource(FrameSource):
    """uint8 (H, W, 3) — a still image — or (F, H, W, 3) frames of a video, in memory."""

    def __init__(self, frames: np.ndarray, decode_size: int, name: str = "array", still=None):
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames, still = frames[None], True if still is None else still
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
            raise InputError(
                f"{name}: expected uint8 RGB (H, W, 3) or (F, H, W, 3), "
                f"got {frames.dtype} {frames.shape}"
            )
        self.frames = frames
        h, w = frames.shape[1:3]
        size = decoded_size(w, h, decode_size)
        self.info = SourceInfo(name, len(frames), None, size, bool(still))
        self._check((w, h))

    def _frames(self) -> Iterator[np.ndarray]:
        yield from self.frames


def open_source(source: str | Path | np.ndarray, decode_size: int = 480) -> FrameSource:
    """The frame source of a video path, a frames folder, an image path or an array."""
    if isinstance(source, np.ndarray):
        return ArraySource(source, decode_size)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        return ArraySource(read_image(path), decode_size, name=str(path), still=True)
    return VideoSource(path, decode_size)
