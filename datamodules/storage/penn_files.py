"""Penn Action as released: the label files and the raw-files record source.

Layout on disk (``root``) and label facts: see ``datamodules.penn``. Alphabet: T frames per clip,
J joints, N_f frames of a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from datamodules.base import load_each, read_image, require_dir
from datamodules.layouts import PENN
from datamodules.storage.records import Frames

ACTIONS = (
    "baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk", "golf_swing",
    "jump_rope", "jumping_jacks", "pullup", "pushup", "situp", "squat", "strum_guitar",
    "tennis_forehand", "tennis_serve",
)  # fmt: skip


@dataclass
class PennVideo:
    """One labels/NNNN.mat: joints (N_f, 13, 2) 0-based px, valid (N_f, 13), bbox (N_f, 4)
    x1 y1 x2 y2, image (H, W); annotated (N_f, 13): has coordinates, visible or occluded."""

    video_id: str
    action: int
    train: bool
    joints: np.ndarray
    valid: np.ndarray
    bbox: np.ndarray
    image_hw: tuple[int, int]
    annotated: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.joints)


def load_label(path: str | Path) -> PennVideo:
    """Parse one Penn Action label file; ValueError naming the file on a bad layout."""
    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True)
        x, y = (np.atleast_2d(mat[k]).astype(np.float64) for k in ("x", "y"))
        vis = np.atleast_2d(mat["visibility"]).astype(bool)
        bbox = np.atleast_2d(mat["bbox"]).astype(np.float64)
        action = ACTIONS.index(str(mat["action"]).strip())
        train = int(mat["train"]) == 1
        height, width = (int(v) for v in np.ravel(mat["dimensions"])[:2])
    except (OSError, ValueError, KeyError, TypeError, IndexError, MatReadError) as err:
        raise ValueError(f"cannot read Penn Action label {path}: {err!r}") from err
    if x.shape != y.shape or x.shape != vis.shape or x.shape[1] != len(PENN):
        raise ValueError(f"{path}: x {x.shape}, y {y.shape}, visibility {vis.shape} differ")
    n = len(x)
    bbox = bbox[np.minimum(np.arange(n), len(bbox) - 1)]  # a row short in some files
    return PennVideo(
        video_id=path.stem,
        action=action,
        train=train,
        joints=np.stack([x, y], axis=-1) - 1.0,
        valid=vis & (x != 0) & (y != 0),
        bbox=bbox - 1.0,
        image_hw=(height, width),
        annotated=(x != 0) & (y != 0),
    )


@dataclass(frozen=True)
class PennClip:
    """A clip of ``video``: frame indices ``idx`` (T,); ``mirrored`` for the flipped copy of an
    evaluation clip."""

    video: PennVideo
    idx: np.ndarray
    mirrored: bool = False


class PennFiles:
    """The videos of one split (``train``) from ``labels/*.mat``, and their ``frames/`` with
    ``images``; without images ``root`` may be the labels folder itself. A garbage label file is
    left out (listed once in ``excluded``, with the reason), not the run."""

    def __init__(self, root: str | Path, images: bool, train: bool):
        self.root = require_dir(root, "Penn Action root")
        labels = self.root / "labels"
        if not images and not labels.is_dir() and any(self.root.glob("*.mat")):
            labels = self.root  # the labels folder itself
        labels = require_dir(labels, "Penn Action labels")
        self.frames_dir = (
            require_dir(self.root / "frames", "Penn Action frames") if images else None
        )
        files = sorted(labels.glob("*.mat"))
        if not files:
            raise FileNotFoundError(f"Penn Action: no labels/*.mat in {labels}")
        loaded, self.excluded = load_each(files, load_label, f"Penn Action labels in {labels}")
        self.videos = [v for v in loaded if v.train == train]

    def frames(self, video: PennVideo, idx: np.ndarray) -> Frames | None:
        """The frames ``idx`` (T,) of ``video`` (T, H, W, 3) uint8; None without images."""
        if self.frames_dir is None:
            return None
        folder = self.frames_dir / video.video_id
        return Frames(np.stack([read_image(folder / f"{f + 1:06d}.jpg") for f in idx]))
