"""The prepared-data store: person crops with an augmentation margin as JPEG, and their geometry.

Alphabet: N stored frames, S crop side (``input_size``), Q stored square side.

A stored frame is the square region [x0, x0 + side)² × [y0, y0 + side)² of the original frame
(zero outside the frame), resized to Q×Q pixels (Q ≤ side: never enlarged). Its ``matrix`` maps
original pixels to stored pixels with the pixel-centre convention of ``cv2.resize`` /
``cv2.warpAffine``: q = k·(p − x0) + (k − 1)/2, k = Q / side. A reader composes the sample's crop
affine (original → crop) with the inverse of that matrix and warps the stored JPEG: the crop, the
targets and every coordinate stay in original pixels, so both paths give the same sample.

The region covers every augmented crop of the reader's ranges: a window w (original pixels) scaled
by s ≤ ``max_scale``, rotated by |a| ≤ ``max_angle`` and shifted by ≤ ``translate`` pixels of a
256-pixel crop spans at most w·s·(cos a + sin a) + 2·translate·w·s/256. The stored resolution keeps
every pixel the most zoomed-in crop (s = ``min_scale``) samples: Q = min(side, side·S / (w·s_min)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datamodules.base import decode_image, read_image, truncation
from datamodules.transforms import REFERENCE_CROP


@dataclass(frozen=True)
class Margin:
    """The augmentation the stored region must leave room for (a reader's ``AugmentRanges``)."""

    input_size: int = 256
    min_scale: float = 1.0
    max_scale: float = 1.0
    max_angle: float = 0.0  # degrees
    translate: float = 0.0  # pixels of a 256-pixel crop

    @classmethod
    def of(cls, aug, input_size: int) -> Margin:
        """The margin of an ``AugmentRanges`` (identity crops always fit inside it)."""
        scales = (1.0, *aug.scales)
        return cls(input_size, min(scales), max(scales), abs(aug.angle), abs(aug.translate))

    def span(self, window: np.ndarray) -> np.ndarray:
        """(…,) side in original pixels that holds every augmented crop of ``window`` (…,)."""
        a = np.deg2rad(min(self.max_angle, 45.0))
        w = np.asarray(window, np.float64) * self.max_scale
        return w * (np.cos(a) + np.sin(a)) + 2.0 * self.translate * w / REFERENCE_CROP


def store_box(
    center: np.ndarray, window: np.ndarray, margin: Margin
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer regions for crops at ``center`` (N, 2) with ``window`` (N,): x0 (N, 2) top-left,
    side (N,) and stored side Q (N,), all int32. Two extra pixels cover bilinear neighbours."""
    side = np.ceil(margin.span(window)).astype(np.int64) + 2
    x0 = np.floor(np.asarray(center, np.float64) - (side[:, None] - 1) / 2.0).astype(np.int64)
    q = np.ceil(side * margin.input_size / (np.asarray(window) * margin.min_scale))
    stored = np.clip(q, 8, side).astype(np.int64)
    return x0.astype(np.int32), side.astype(np.int32), stored.astype(np.int32)


def store_matrix(x0: np.ndarray, side: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(N, 2, 3) float64 original pixels → stored pixels (see the module doc)."""
    k = np.asarray(stored, np.float64) / np.asarray(side, np.float64)  # (N,)
    m = np.zeros((len(k), 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = k
    m[:, :, 2] = -k[:, None] * np.asarray(x0, np.float64) + (k[:, None] - 1.0) / 2.0
    return m


def cut(frame: np.ndarray, x0: tuple[int, int], side: int, stored: int) -> np.ndarray:
    """uint8 (Q, Q, 3): the square region of ``frame`` (H, W, 3), zero outside, area-resized."""
    h, w = frame.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    xa, ya = max(0, x0[0]), max(0, x0[1])
    xb, yb = min(w, x0[0] + side), min(h, x0[1] + side)
    if xb > xa and yb > ya:
        out[ya - x0[1] : yb - x0[1], xa - x0[0] : xb - x0[0]] = frame[ya:yb, xa:xb]
    if stored == side:
        return out
    return cv2.resize(out, (stored, stored), interpolation=cv2.INTER_AREA)


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 85) -> int:
    """Write RGB uint8 (H, W, 3) as JPEG (folders created); returns the file size in bytes."""
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"{path}: cv2 could not encode the JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    return len(buf)


def decode_jpeg(data: bytes | np.ndarray, name: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) from JPEG bytes (or a uint8 array of them, as streamed chunks hold);
    SampleReadError naming ``name`` when undecodable."""
    return decode_image(data if isinstance(data, bytes) else np.asarray(data).tobytes(), name)


REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def read_for_crop(path: Path, window: float, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """An image to crop a ``window``-pixel square (augmentation scale included) into S×S from:
    decoded at 1/r (JPEG DCT scaling, r ∈ {2, 4, 8}, the largest keeping ≥ S / window samples per
    original pixel) with its (2, 3) original → decoded matrix, or at full size with None."""
    r = max([f for f in REDUCED if window / f >= size] or [1])
    if r == 1 or path.suffix.lower() not in (".jpg", ".jpeg"):
        return read_image(path), None
    data = path.read_bytes() if path.is_file() else b""
    bad = not data or truncation(data)
    image = None if bad else cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED[r])
    if image is None:  # missing, empty, truncated (decoded greyed, no error) or corrupt
        return read_image(path), None  # FileNotFoundError / SampleReadError naming the file
    return image[..., ::-1], store_matrix(np.zeros((1, 2)), np.array([r]), np.array([1]))[0]
