"""Stored person crops as the readers decode them: their geometry, the margin, reduced decodes.

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

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from datamodules.base import decode_image, decode_jpeg_scaled, read_image, truncation
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

    def at(self, scale: float) -> Margin:
        """The margin of one augmentation scale (a region stored per scale)."""
        return replace(self, min_scale=float(scale), max_scale=float(scale))

    def covers(self, aug, input_size: int) -> bool:
        """Whether crops stored for this margin serve ``aug`` (an ``AugmentRanges``) at
        ``input_size``: as wide a region, at least the resolution."""
        need = Margin.of(aug, input_size)
        return (
            self.span(1.0) >= need.span(1.0) - 1e-9
            and input_size <= self.input_size
            and need.min_scale >= self.min_scale - 1e-9
        )

    def span(self, window: np.ndarray) -> np.ndarray:
        """(…,) side in original pixels that holds every augmented crop of ``window`` (…,)."""
        a = np.deg2rad(min(self.max_angle, 45.0))
        w = np.asarray(window, np.float64) * self.max_scale
        return w * (np.cos(a) + np.sin(a)) + 2.0 * self.translate * w / REFERENCE_CROP


def store_matrix(x0: np.ndarray, side: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(N, 2, 3) float64 original pixels → stored pixels (see the module doc)."""
    k = np.asarray(stored, np.float64) / np.asarray(side, np.float64)  # (N,)
    m = np.zeros((len(k), 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = k
    m[:, :, 2] = -k[:, None] * np.asarray(x0, np.float64) + (k[:, None] - 1.0) / 2.0
    return m


def decode_jpeg(data: bytes | np.ndarray, name: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) from JPEG bytes (or a uint8 array of them, as streamed chunks hold);
    SampleReadError naming ``name`` when undecodable."""
    return decode_image(data if isinstance(data, bytes) else np.asarray(data).tobytes(), name)


REDUCED = (2, 4, 8)  # the JPEG DCT scalings used: 1/2, 1/4, 1/8


def decode_factor(window: float, size: int) -> int:
    """The largest r ∈ {1, 2, 4, 8} with window / r ≥ size: a 1/r decode keeps at least the S×S
    crop's samples over a ``window``-pixel square."""
    return max([f for f in REDUCED if window / f >= size] or [1])


def read_for_crop(path: Path, window: float, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """An image to crop a ``window``-pixel square (augmentation scale included) into S×S from:
    decoded at 1/r (JPEG DCT scaling, r = ``decode_factor``) with its (2, 3) original → decoded
    matrix, or at full size with None."""
    r = decode_factor(window, size)
    if r == 1 or path.suffix.lower() not in (".jpg", ".jpeg"):
        return read_image(path), None
    data = path.read_bytes() if path.is_file() else b""
    rgb = None if not data or truncation(data) else decode_jpeg_scaled(data, r)
    if rgb is None:  # missing, empty, truncated (decoded greyed, no error), CMYK or corrupt
        return read_image(path), None  # FileNotFoundError / SampleReadError naming the file
    return rgb, store_matrix(np.zeros((1, 2)), np.array([r]), np.array([1]))[0]
