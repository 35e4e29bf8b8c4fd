"""THE clip reader: one interface over video files (decord) and pre-extracted frame folders.

Alphabet: T frames read, H×W frame size.

A frames folder holds one image per frame named by its 1-based frame number (``00001.jpg``,
``000017.png``…, the convention of the official extraction scripts); it may be sparse (e.g. only the
frames a protocol uses), and reading a frame that is absent is an error naming the expected file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import SampleReadError, read_image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class VideoReader:
    """Random-access uint8 RGB frames of a video file or of a frames folder.

    ``num_frames``: frames that can be read (for a video: what the decoder can reach, checked
    against the container header, so that a truncated file is reported, not silently shortened);
    ``fps`` (None for a folder); ``size`` = (W, H).
    """

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        if self.path.is_dir():
            self._open_folder()
            self.fps = fps
        elif self.path.is_file():
            self._open_video()
            self.fps = fps or self._fps
        else:
            raise FileNotFoundError(f"video not found (neither a file nor a frames folder): {path}")

    def _open_video(self) -> None:
        import decord

        try:
            self._vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1)
        except Exception as err:  # decord raises DECORDError / RuntimeError with no file name
            raise SampleReadError(self.path, f"cannot open the video ({err})") from None
        self.num_frames = len(self._vr)
        declared, w, h = _header(self.path)
        if declared and self.num_frames < declared:
            raise SampleReadError(
                self.path,
                f"truncated video: the header declares {declared} frames, "
                f"only {self.num_frames} can be decoded",
            )
        if self.num_frames == 0:
            raise SampleReadError(self.path, "the video has no decodable frame")
        if not w:
            h, w = self._vr[0].shape[:2]
            self._vr.seek(0)
        self.size = (int(w), int(h))
        self._fps = float(self._vr.get_avg_fps())
        self._frames = None

    def _open_folder(self) -> None:
        files = [p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
        self._frames = {int(p.stem): p for p in files if p.stem.isdigit()}
        if not self._frames:
            raise FileNotFoundError(f"frames folder has no numbered image: {self.path}")
        self.num_frames = max(self._frames)
        h, w = read_image(next(iter(self._frames.values()))).shape[:2]
        self.size = (int(w), int(h))

    def __len__(self) -> int:
        return self.num_frames

    def read(self, indices) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB frames at 0-based ``indices`` (any order, repeats allowed)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = indices[(indices < 0) | (indices >= self.num_frames)]
        if bad.size:
            raise IndexError(
                f"frame {int(bad[0])} out of range: {self.path} has {self.num_frames} frames"
            )
        if self._frames is not None:
            return np.stack([self._read_file(int(i)) for i in indices])
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            frames = self._vr.get_batch(unique.tolist()).asnumpy()
        except Exception as err:
            raise SampleReadError(
                self.path, f"cannot decode frames {unique.tolist()} (truncated or corrupt? {err})"
            ) from None
        return frames[inverse]

    def _read_file(self, index: int) -> np.ndarray:
        path = self._frames.get(index + 1)
        if path is None:
            raise FileNotFoundError(
                f"frame {index} (file number {index + 1}) not extracted in {self.path}"
            )
        image = read_image(path)
        if (image.shape[1], image.shape[0]) != self.size:
            raise SampleReadError(path, f"frame size {image.shape[1::-1]} differs from {self.size}")
        return image


def _header(path: Path) -> tuple[int, int, int]:
    """(frames, W, H) stored in the container header (zeros where it does not say)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return int(stream.frames), int(stream.width or 0), int(stream.height or 0)
    except Exception:  # decord already opened the file; a header PyAV cannot parse says nothing
        return 0, 0, 0
