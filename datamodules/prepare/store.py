"""The writing half of the prepared-data store: the region of each stored crop and its JPEG.

The geometry (a stored frame, its matrix, the augmentation margin it leaves) is described in
``datamodules.storage.crops``, the half the readers use. Alphabet: N stored frames, Q stored side.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from datamodules.storage.crops import (  # noqa: F401  (the readers' half, re-exported)
    Margin,
    decode_jpeg,
    read_for_crop,
    store_matrix,
)


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
