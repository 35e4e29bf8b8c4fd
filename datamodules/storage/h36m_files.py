"""Human3.6M as released: the protocol's facts, the pose CDFs, and the raw-files record source.

Layout on disk (``root``): see ``datamodules.h36m``. Alphabet: N frames.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.base import SampleReadError, require_dir
from datamodules.h36m_cameras import load_cameras
from datamodules.layouts import H36M32
from datamodules.storage.records import Frames, H36MFrame, Recording
from datamodules.video import VideoReader

CAMERAS = ("54138969", "55011271", "58860488", "60457274")
TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
TRAIN_STEP, TEST_STEP = 5, 64
ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)  # fmt: skip
ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}
KNOWN_MISSING = {(11, "Directions.54138969")}


def normalise_action(name: str) -> str | None:
    """Table-1 action of a release file name ("Directions 1" → "Directions", "TakingPhoto" →
    "Photo"); None for the ``_ALL`` recordings."""
    base = re.sub(r"\s*\d+$", "", name.strip())
    if base.startswith("_ALL"):
        return None
    base = ALIASES.get(base, base)
    if base not in ACTIONS:
        raise ValueError(f"unknown Human3.6M action name {name!r}")
    return base


def cdf_frames(path: Path) -> int:
    """Frame count N of a pose CDF (its ``Pose`` is (1, N, C)) without reading the data."""
    import cdflib

    try:
        dims = cdflib.CDF(str(path)).varinq("Pose").Dim_Sizes
    except Exception as err:  # cdflib raises bare Exceptions on a bad file
        raise SampleReadError(path, f"not a Human3.6M pose CDF ({err})") from None
    return int(dims[0]) if dims else 0


@functools.lru_cache(maxsize=16)
def read_cdf_pose(path: Path, dim: int) -> np.ndarray:
    """(N, 32, dim) float32 ``Pose`` of a D3_Positions_mono (dim 3) or D2_Positions (dim 2) CDF."""
    import cdflib

    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M pose file not found: {path}")
    try:
        pose = np.asarray(cdflib.CDF(str(path)).varget("Pose"), np.float32)
        return pose.reshape(-1, len(H36M32), dim)
    except Exception as err:
        raise SampleReadError(path, f"cannot read Pose ({err})") from None


def frame_items(sequences: Sequence[Recording], step: int) -> tuple[np.ndarray, np.ndarray]:
    """(recording (N,), frame (N,)) of every frame with index % step == 0."""
    frames = [np.arange(0, s.num_frames, step) for s in sequences]
    item_seq = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    return item_seq, np.concatenate(frames) if frames else np.zeros(0, np.int64)


class RawH36M:
    """The frames of the download (poses, calibration, videos or frame folders). Start-up reads
    the pose headers only; ``video_lengths`` opens every video to count its frames."""

    def __init__(self, root: str | Path, subjects: Sequence[int], actions: Sequence[str] | None,
                 step: int, cameras: str | Path | None = None, video_lengths: bool = False):  # fmt: skip
        self.root = require_dir(root, "Human3.6M root")
        self.video_lengths = video_lengths
        self.cameras = load_cameras(self.root, cameras)
        self.sequences = [
            s for subject in subjects for s in self._sequences(subject)
            if actions is None or s.action in actions
        ]  # fmt: skip
        self.item_seq, self.item_frame = frame_items(self.sequences, step)

    def paths(self, subject: int, stem: str) -> dict[str, Path]:
        s = self.root / f"S{subject}"
        frames = s / "Frames" / stem
        return {
            "d3": s / "MyPoseFeatures" / "D3_Positions_mono" / f"{stem}.cdf",
            "d2": s / "MyPoseFeatures" / "D2_Positions" / f"{stem}.cdf",
            "video": frames if frames.is_dir() else s / "Videos" / f"{stem}.mp4",
        }

    def _sequences(self, subject: int) -> list[Recording]:
        folder = require_dir(
            self.root / f"S{subject}" / "MyPoseFeatures" / "D3_Positions_mono", "Human3.6M poses"
        )
        out = []
        for path in sorted(folder.glob("*.cdf")):
            name, _, cam = path.stem.rpartition(".")
            action = normalise_action(name) if cam in CAMERAS else None
            if action is None:
                continue
            paths = self.paths(subject, path.stem)
            missing = [p for p in paths.values() if not p.exists()]
            if missing and (subject, path.stem) in KNOWN_MISSING:
                continue
            if missing:
                raise FileNotFoundError(f"Human3.6M file not found: {missing[0]}")
            if (subject, cam) not in self.cameras:
                raise KeyError(f"Human3.6M: no calibration for S{subject} camera {cam}")
            n = min(cdf_frames(path), cdf_frames(paths["d2"]))
            if self.video_lengths:
                n = min(n, len(VideoReader(paths["video"])))
            out.append(Recording(subject, path.stem, action, cam, n))
        return out

    def __len__(self) -> int:
        return len(self.item_frame)

    def read(self, i: int) -> tuple[H36MFrame, Frames]:
        """Item ``i``: its poses and calibration, and the original frame."""
        seq, f = self.sequences[self.item_seq[i]], int(self.item_frame[i])
        paths = self.paths(seq.subject, seq.stem)
        xyz, uv = read_cdf_pose(paths["d3"], 3)[f], read_cdf_pose(paths["d2"], 2)[f]
        video = VideoReader(paths["video"])
        if f >= video.num_frames:
            raise SampleReadError(paths["video"], f"frame {f} past the video's "
                                  f"{video.num_frames} frames (its poses are longer)")  # fmt: skip
        cam = self.cameras[(seq.subject, seq.camera)]
        return H36MFrame(seq, f, uv, xyz, cam.f, cam.intrinsics), Frames(video.read([f])[0])
