"""What a record source hands a sample builder: a record (poses, calibration, names) and frames.

Alphabet: T frames, n video frames, J joints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Frames:
    """uint8 images ([T,] H, W, 3): the original frames (``stored`` None), or stored crops or a
    reduced decode with ``stored`` (2, 3) original → image pixels."""

    images: np.ndarray
    stored: np.ndarray | None = None


@dataclass(frozen=True)
class Recording:
    """One Human3.6M recording: subject, release file stem "<Action>.<cam>", Table-1 action,
    camera, frame count."""

    subject: int
    stem: str
    action: str
    camera: str
    num_frames: int


@dataclass(frozen=True)
class H36MFrame:
    """One Human3.6M frame: its recording and index, uv (32, 2) px, xyz (32, 3) mm, focal (2,)
    float64 pixels, intrinsics (4,) float32 fx fy cx cy."""

    recording: Recording
    frame: int
    uv: np.ndarray
    xyz: np.ndarray
    focal: np.ndarray
    intrinsics: np.ndarray


@dataclass(frozen=True)
class NTUVideo:
    """The main actor of one NTU sample: xyz (n, 25, 3) mm, uv (n, 25, 2) colour pixels of the
    video's ``size`` (W, H), valid (n, 25); ``read`` 0-based frame indices → frames (T, H, W, 3)
    uint8 (None: poses only), ``stored`` (2, 3) original → read pixels (None: the originals).
    ``start`` is the first frame of a clip taken with ``take``."""

    name: str
    xyz: np.ndarray
    uv: np.ndarray
    valid: np.ndarray
    size: tuple[int, int]
    read: Callable[[np.ndarray], np.ndarray] | None = None
    stored: np.ndarray | None = None
    start: int = 0

    def take(self, idx: np.ndarray) -> NTUVideo:
        """The clip of frames ``idx`` (T,): poses (T, 25, ·), ``start`` = idx[0]."""
        return replace(
            self, xyz=self.xyz[idx], uv=self.uv[idx], valid=self.valid[idx], start=int(idx[0])
        )

    def frames(self, idx: np.ndarray) -> Frames | None:
        """The clip's frames, None for a poses-only source."""
        return None if self.read is None else Frames(self.read(idx), self.stored)
