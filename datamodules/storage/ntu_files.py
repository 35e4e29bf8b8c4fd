"""NTU RGB+D as released: sample names and splits, the .skeleton format, the raw-files source.

Layout on disk (``root``): see ``datamodules.ntu``. Alphabet: T frames, J joints, N body records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.base import SampleReadError, load_each, require_dir
from datamodules.storage.records import NTUVideo
from datamodules.video import VideoReader

NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
XSUB_TRAIN_60 = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
XSUB_TRAIN_120 = XSUB_TRAIN_60 + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
)  # fmt: skip
XVIEW_TRAIN_CAMERAS = (2, 3)
MISSING_LISTS = {
    60: "NTU_RGBD_samples_with_missing_skeletons.txt",
    120: "NTU_RGBD120_samples_with_missing_skeletons.txt",
}
NUM_JOINTS = 25
VIDEO_DIRS = ("nturgb+d_rgb", "nturgb+d_frames")
COLOR_SIZE = (1920, 1080)  # Kinect v2 colour frames; pre-extracted ones may be smaller (960×540)

# --- the .skeleton text format -------------------------------------------------------------------


@dataclass
class Skeletons:
    """Every body record of a .skeleton file: frame (N,) index, body_id (N,) str, info (N, 9)
    (clipedEdges … trackingState), joints (N, 25, 12) (x y z depthX depthY colorX colorY oriW oriX
    oriY oriZ trackingState; x y z in metres)."""

    num_frames: int
    frame: np.ndarray
    body_id: np.ndarray
    info: np.ndarray
    joints: np.ndarray


def parse_skeleton(path: str | Path) -> Skeletons:
    """Parse a .skeleton file; 0, 1, 2 or more bodies per frame. Lines are classified by their
    token count (1: a count, 10: a body header, 12: a joint) and the numbers parsed in one go."""
    path = Path(path)
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise SampleReadError(path, str(err)) from None
    if not lines or len(lines[0]) != 1:
        raise SampleReadError(path, "the first line must be the frame count")
    ntok = np.array([len(t) for t in lines])
    header, joint = ntok == 10, ntok == 12
    after_header = np.r_[False, header[:-1]]
    body_count = (ntok == 1) & ~after_header
    body_count[0] = False
    bad = ~(header | joint | (ntok == 1))
    if bad.any():
        line = int(np.argmax(bad))
        raise SampleReadError(path, f"line {line + 1}: unexpected {ntok[line]} values")
    num_frames = int(lines[0][0])
    if body_count.sum() != num_frames:
        raise SampleReadError(path, f"{num_frames} frames announced, {body_count.sum()} found")
    counts = np.array([int(lines[i][0]) for i in np.flatnonzero(body_count)])
    joint_counts = np.array([int(lines[i][0]) for i in np.flatnonzero(after_header)])
    if counts.sum() != header.sum() or np.any(joint_counts != NUM_JOINTS):
        raise SampleReadError(path, "body or joint counts do not match the records")
    if joint.sum() != NUM_JOINTS * header.sum():
        raise SampleReadError(path, f"{joint.sum()} joint lines for {header.sum()} bodies")
    heads = [lines[i] for i in np.flatnonzero(header)]
    values = " ".join(" ".join(lines[i]) for i in np.flatnonzero(joint))
    return Skeletons(
        num_frames=num_frames,
        frame=np.repeat(np.arange(num_frames), counts),
        body_id=np.array([h[0] for h in heads], dtype=str),
        info=np.array([h[1:] for h in heads], dtype=np.float64).reshape(-1, 9),
        joints=np.array(values.split(), dtype=np.float64).reshape(-1, NUM_JOINTS, 12),
    )


def main_actor(sk: Skeletons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body tracked with the largest motion variance (Σ over joints and x, y, z of the
    variance over its frames). Returns xyz (T, 25, 3) mm, colour pixels (T, 25, 2) and valid
    (T, 25) (body present, depth and colour coordinates > 0, as the official code); zeros where
    invalid. Raises when the file has no body at all."""
    if len(sk.frame) == 0:
        raise ValueError("no body in any frame")
    ids, inverse = np.unique(sk.body_id, return_inverse=True)
    xyz = sk.joints[..., :3].reshape(len(inverse), -1)
    count = np.bincount(inverse)[:, None]
    total = np.zeros((len(ids), xyz.shape[1]))
    sq = np.zeros_like(total)
    np.add.at(total, inverse, xyz)
    np.add.at(sq, inverse, xyz**2)
    variance = (sq / count - (total / count) ** 2).sum(axis=1)
    rows = inverse == np.argmax(variance)
    frames, joints = sk.frame[rows], sk.joints[rows]
    xyz_mm = np.zeros((sk.num_frames, NUM_JOINTS, 3))
    uv = np.zeros((sk.num_frames, NUM_JOINTS, 2))
    xyz_mm[frames] = 1000.0 * joints[..., :3]
    uv[frames] = joints[..., 5:7]
    valid = (xyz_mm[..., 2] > 0) & np.all(uv > 0, axis=-1)
    return np.where(valid[..., None], xyz_mm, 0.0), np.where(valid[..., None], uv, 0.0), valid


def read_missing_list(path: str | Path) -> set[str]:
    """Sample names of an official missing-skeleton list (one per line)."""
    try:
        return {line.strip() for line in Path(path).read_text().splitlines() if line.strip()}
    except OSError as err:
        raise FileNotFoundError(f"cannot read NTU missing-skeleton list {path}: {err}") from None


def release_names(names: Iterable[str], version: int) -> list[str]:
    """The sample names (``SsssCcccPpppRrrrAaaa``) of NTU RGB+D ``version`` among ``names``,
    sorted: NTU60 holds actions A001–A060, NTU120 all."""
    return sorted(n for n in names if NAME.fullmatch(n) and (version == 120 or int(n[-3:]) <= 60))


def skeleton_names(skeletons: Path, version: int) -> list[str]:
    """``release_names`` of the ``*.skeleton`` files in the folder ``skeletons``."""
    return release_names((p.stem for p in skeletons.glob("*.skeleton")), version)


def is_train(name: str, benchmark: str, version: int) -> bool:
    """Official splits: xsub (subjects), xview (cameras 2, 3), xset (NTU120: even setups)."""
    s, c, p, _, _ = (int(v) for v in NAME.fullmatch(name).groups())
    if benchmark == "xsub":
        return p in (XSUB_TRAIN_60 if version == 60 else XSUB_TRAIN_120)
    if benchmark == "xview":
        return c in XVIEW_TRAIN_CAMERAS
    if benchmark == "xset":
        return s % 2 == 0
    raise ValueError(f"NTU benchmark must be 'xsub', 'xview' or 'xset', got {benchmark!r}")


def header_frames(path: Path) -> tuple[str, int]:
    """(name, frame count) from the first line of a .skeleton file; ValueError naming it."""
    with open(path) as file:
        first = file.readline()
    if not first.strip().isdigit():
        raise ValueError(f"{path}: not an NTU skeleton (first line {first[:40]!r}, no frame count)")
    return path.stem, int(first)


def video_path(root: Path, name: str) -> Path:
    """The pre-extracted frames folder of a sample when present, else its RGB video."""
    frames = root / VIDEO_DIRS[1] / name
    return frames if frames.is_dir() else root / VIDEO_DIRS[0] / f"{name}_rgb.avi"


def skipped(missing_list: str | Path | None, default: Path | None) -> set[str]:
    """The names to leave out: ``missing_list``, else the ``default`` list when it exists."""
    if missing_list is not None:
        return read_missing_list(missing_list)
    return read_missing_list(default) if default is not None and default.is_file() else set()


class RawNTU:
    """The samples of the download (skeleton files, and videos or frame folders with ``images``)
    of release ``version`` that ``keep`` accepts, less the missing-skeleton list."""

    def __init__(self, root: str | Path, images: bool, version: int, keep: Callable[[str], bool],
                 missing_list: str | Path | None = None):  # fmt: skip
        self.root = require_dir(root, "NTU root")
        self.skeletons = require_dir(self.root / "nturgb+d_skeletons", "NTU skeletons")
        if images and not any((self.root / d).is_dir() for d in VIDEO_DIRS):
            raise FileNotFoundError(f"NTU videos: none of {VIDEO_DIRS} found in {self.root}")
        self.images, self.excluded = images, {}
        skip = skipped(missing_list, self.root / MISSING_LISTS[version])
        names = skeleton_names(self.skeletons, version)
        self.names = [n for n in names if n not in skip and keep(n)]

    def __len__(self) -> int:
        return len(self.names)

    def frame_counts(self) -> dict[str, int]:
        """Frame count of every sample from its file header; a garbage skeleton file excludes its
        sample (listed once in ``excluded``, with the reason)."""
        paths = [self.skeletons / f"{name}.skeleton" for name in self.names]
        found, self.excluded = load_each(paths, header_frames, f"NTU skeletons {self.skeletons}")
        return dict(found)

    def read(self, v: int) -> NTUVideo:
        """Sample ``v``: the main actor, cut to the video's length, and its video."""
        name = self.names[v]
        path = self.skeletons / f"{name}.skeleton"
        try:
            xyz, uv, valid = main_actor(parse_skeleton(path))
        except ValueError as err:
            raise SampleReadError(path, str(err)) from None
        if not self.images:
            return NTUVideo(name, xyz, uv, valid, COLOR_SIZE)
        video = VideoReader(video_path(self.root, name))
        n = min(len(xyz), video.num_frames)
        return NTUVideo(name, xyz[:n], uv[:n], valid[:n], video.size, video.read)
