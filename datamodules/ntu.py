"""NTU RGB+D 60/120: Kinect v2 skeletons (+ RGB videos) → action clips (3D samples).

Layout on disk (``root``)::

    nturgb+d_skeletons/SsssCcccPpppRrrrAaaa.skeleton     (the only folder ``mode="poses"`` needs)
    nturgb+d_rgb/SsssCcccPpppRrrrAaaa_rgb.avi            (or nturgb+d_frames/SsssCcccPpppRrrrAaaa/
                                                          00001.jpg … pre-extracted, 1-based)
    NTU_RGBD_samples_with_missing_skeletons.txt          (NTU120: NTU_RGBD120_…; optional)

Per clip: the main actor (largest motion variance), 2D = Kinect colour pixels, 3D = camera-frame
millimetres. Crop: union of the ×1.5 joint boxes of the first, middle and last clip frames,
squared (Penn Action's rule; minimum window 32 px). Depth: z_norm = (z − (d − 1000·s)) / (2000·s),
d = mean root depth over the clip, s = augmentation scale, so ``depth`` = (d − 1000·s, 2000·s).
Pre-extracted frames smaller than 1920 px wide (the official 960×540) rescale the colour pixels.

Clip frames follow the official pipeline: the 30 fps video is first taken every ``video_step``
(= 2) frames, then ``subsample`` ∈ {1, 2, 3} (training, random) or 2 (evaluation) on top.
With ``prepared=`` (a folder of ``python -m datamodules.prepare ntu``) poses, frame counts and the
stored crops of those frames come from there (the raw root is not read): same clips and crops.
Alphabet: T frames, J joints, N body records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from datamodules.base import (
    SampleReadError,
    clip_indices,
    load_each,
    require_dir,
    sample_rng,
    to_tensors,
)
from datamodules.layouts import NTU25, convert, get_layout
from datamodules.prepare.clips import PreparedVideos
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    clip_box,
    crop_sample,
    depth_range,
)
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
NTU_AUG = AugmentRanges(angle=0.0, scales=(0.7, 1.0, 1.3), flip=True, translate=40.0)
TRAIN_SUBSAMPLE = (1, 2, 3)
TEST_SUBSAMPLE = 2
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


def root_depth(z: np.ndarray, valid: np.ndarray, root: int) -> float:
    """Mean root depth over the clip (mm); the mean valid joint depth where the root is never
    valid. z (T, J), valid (T, J)."""
    use = valid[:, root] if valid[:, root].any() else valid
    zs = z[:, root][use] if valid[:, root].any() else z[use]
    if not len(zs):
        raise ValueError("no valid depth in the clip")
    return float(zs.mean())


# --- the dataset ---------------------------------------------------------------------------------


class NTUDataset(Dataset):
    """NTU RGB+D clips as sample dicts (``datamodules.sample``, clip form), 3D, with the action.

    mode "images": video frames + Kinect poses; "poses": Kinect poses only (no ``image``; only the
    skeleton folder is read). clip_sampling: "random" (default for training), "middle" (default
    for evaluation) or "multi" (every clip of every video: one item per clip, ``video_id`` groups
    them). subsample: int or a sequence drawn from per clip (default (1, 2, 3) when augmenting,
    else 2), counted on the video already taken every ``video_step`` frames.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        benchmark: Literal["xsub", "xview", "xset"] = "xsub",
        version: Literal[60, 120] = 60,
        layout: str = "pa20j",
        clip_length: int = 20,
        mode: Literal["images", "poses"] = "images",
        clip_sampling: Literal["random", "middle", "multi"] | None = None,
        subsample: int | Sequence[int] | None = None,
        input_size: int = 256,
        augment: bool | None = None,
        missing_list: str | Path | None = None,
        aug: AugmentRanges | dict | None = None,
        video_step: int = 2,
        prepared: str | Path | None = None,
    ):
        if split not in ("train", "test") or mode not in ("images", "poses"):
            raise ValueError(f"NTUDataset: bad split {split!r} or mode {mode!r}")
        if version not in MISSING_LISTS:
            raise ValueError(f"NTUDataset: version must be 60 or 120, got {version!r}")
        self.prepared = PreparedVideos(prepared) if prepared else None
        self.root = None if self.prepared else require_dir(root, "NTU root")
        self.skeletons = None if self.prepared else require_dir(
            self.root / "nturgb+d_skeletons", "NTU skeletons")  # fmt: skip
        self.mode, self.layout, self.T = mode, get_layout(layout), clip_length
        self.benchmark = benchmark  # the carved validation split groups by it (splits.py)
        self.input_size, self.video_step = input_size, video_step
        self.augment = split == "train" if augment is None else augment
        self.aug = AugmentRanges(**aug) if isinstance(aug, dict) else (aug or NTU_AUG)
        self.clip_sampling = clip_sampling or ("random" if split == "train" else "middle")
        default = TRAIN_SUBSAMPLE if self.augment else TEST_SUBSAMPLE
        self.subsample = tuple(np.atleast_1d(subsample or default).astype(int).tolist())
        if self.prepared is not None:
            self.prepared.check(self, version, {*TRAIN_SUBSAMPLE, TEST_SUBSAMPLE})
        if (
            not self.prepared
            and mode == "images"
            and not any((self.root / d).is_dir() for d in VIDEO_DIRS)
        ):
            raise FileNotFoundError(f"NTU videos: none of {VIDEO_DIRS} found in {self.root}")
        skip = self._missing(missing_list, version)
        names = (
            skeleton_names(self.skeletons, version) if self.prepared is None
            else release_names(self.prepared.names(), version)
        )  # fmt: skip
        self.names = [
            n for n in names if n not in skip and is_train(n, benchmark, version) == (split == "train")
        ]  # fmt: skip
        self.items = self._clips() if self.clip_sampling == "multi" else None

    def _missing(self, missing_list: str | Path | None, version: int) -> set[str]:
        if missing_list is not None:
            return read_missing_list(missing_list)
        if self.root is None:  # prepared: the missing list was applied when preparing
            return set()
        default = self.root / MISSING_LISTS[version]
        return read_missing_list(default) if default.is_file() else set()

    def _clips(self) -> list[tuple[int, np.ndarray]]:
        """(video index, frame indices (T,)) of every clip; frame counts from the file headers."""
        items = []
        if self.prepared:
            counts = dict(zip(self.names, map(int, self.prepared.skeleton_frames(self.names))))
        else:  # a garbage skeleton file excludes its video (listed once, with the reason)
            paths = [self.skeletons / f"{name}.skeleton" for name in self.names]
            found, self.excluded = load_each(
                paths, header_frames, f"NTU skeletons {self.skeletons}"
            )
            counts = dict(found)
        for v, name in enumerate(self.names):
            if (n := counts.get(name)) is None:
                continue
            for sub in self.subsample:
                clips = clip_indices(self._steps(n), self.T, "multi", sub)
                items += [(v, c * self.video_step) for c in clips]
        return items

    def _load(self, name: str):
        """(xyz (n, 25, 3), uv (n, 25, 2), valid (n, 25), frames reader, (W, H), stored (2, 3) or
        None) of sample ``name``; frames reader: 0-based indices → (T, H, W, 3) uint8."""
        if self.prepared is None:
            path = self.skeletons / f"{name}.skeleton"
            try:
                xyz, uv, valid = main_actor(parse_skeleton(path))
            except ValueError as err:
                raise SampleReadError(path, str(err)) from None
            if self.mode != "images":
                return xyz, uv, valid, None, COLOR_SIZE, None
            video = VideoReader(video_path(self.root, name))
            n = min(len(xyz), video.num_frames)
            return xyz[:n], uv[:n], valid[:n], video.read, video.size, None
        return self.prepared.load(name, self.mode == "images")

    def _load_item(self, v: int) -> tuple[str, tuple]:
        """(name, ``_load(name)``) of video ``v`` (the streaming source reads chunks instead)."""
        return self.names[v], self._load(self.names[v])

    def _steps(self, num_frames: int) -> int:
        return -(-num_frames // self.video_step)

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.names)

    def __getitem__(self, i: int) -> dict:
        v, fixed = self.items[i] if self.items is not None else (i, None)
        name, (xyz, uv, valid, read, size, stored) = self._load_item(v)
        n = len(xyz)
        rng = sample_rng()
        params = self.aug.sample(rng) if self.augment else AugmentParams()
        if fixed is None:
            sub = int(rng.choice(self.subsample)) if len(self.subsample) > 1 else self.subsample[0]
            fixed = clip_indices(self._steps(n), self.T, self.clip_sampling, sub, rng)[0]
            fixed = fixed * self.video_step
        idx = np.minimum(fixed, n - 1)
        frames = read(idx) if read is not None else None
        if size[0] != COLOR_SIZE[0]:
            uv = uv * (size[0] / COLOR_SIZE[0])
        out = self._clip(frames, xyz[idx], uv[idx], valid[idx], params, size, stored)
        out.update(
            action=np.int64(int(name[-3:]) - 1),
            dataset="ntu",
            sample_id=f"ntu/{name}/{int(idx[0])}",
            video_id=f"ntu/{name}",
        )
        return to_tensors(out)

    def _clip(self, frames, xyz, uv, valid, params: AugmentParams, size: tuple[int, int],
              stored: np.ndarray | None = None) -> dict:  # fmt: skip
        """One clip in the dataset layout: frames (T, H, W, 3) uint8 or None — original frames, or
        stored crops with ``stored`` (2, 3) original → stored pixels — xyz (T, 25, 3) mm, uv
        (T, 25, 2) colour pixels, valid (T, 25)."""
        joints, valid = convert(np.concatenate([uv, xyz], axis=-1), valid, NTU25, self.layout)
        uv, xyz = joints[..., :2], joints[..., 2:]
        center, window = clip_box(uv, valid, size[::-1])
        d = root_depth(xyz[..., 2], valid, self.layout.index("pelvis"))
        origin, span = depth_range(d, params.scale)
        z = (xyz[..., 2:] - origin) / span
        out = crop_sample(
            frames, np.concatenate([uv, z], axis=-1), valid, center, window, self.input_size,
            self.layout.flip, params, stored,
        )  # fmt: skip
        out.update(
            pose_mm=(xyz[:, self.layout.flip] if params.flip else xyz).astype(np.float32),
            depth=np.tile(np.float32([origin, span]), (len(xyz), 1)),
            camera=np.zeros(4, np.float32),
            pck_ref=np.zeros(len(xyz), np.float32),
        )
        return out


# --- download check (for ``python -m datamodules.check``) ----------------------------------------

#: Samples per release and, after removing the missing-skeleton list, per NTU60 split (train, test).
TOTAL_SAMPLES = {60: 56880, 120: 114480}
SPLIT_SIZES_60 = {"xsub": (40091, 16487), "xview": (37646, 18932)}


def check_download(root: str | Path, version: int = 60, videos: bool = True) -> list[str]:
    """Skeleton count of the release, missing list, NTU60 split sizes, one video per skeleton."""
    root = require_dir(root, "NTU root")
    names = skeleton_names(root / "nturgb+d_skeletons", version)
    problems = []
    print(f"ntu{version}: {len(names)} skeleton files (release: {TOTAL_SAMPLES[version]})")
    if len(names) != TOTAL_SAMPLES[version]:
        problems.append(
            f"ntu{version}: {len(names)} skeletons, the release has {TOTAL_SAMPLES[version]}"
        )
    if not (root / MISSING_LISTS[version]).is_file():
        problems.append(
            f"ntu{version}: {root / MISSING_LISTS[version]} not found (samples to skip)"
        )
    for bench, sizes in SPLIT_SIZES_60.items() if version == 60 else ():
        found = tuple(
            len(NTUDataset(root, split, bench, version, mode="poses"))
            for split in ("train", "test")
        )
        print(f"ntu60 {bench}: train/test {found} (official after the missing list: {sizes})")
        if found != sizes:
            problems.append(f"ntu60 {bench}: {found} train/test samples, expected {sizes}")
    if videos:
        absent = [n for n in names if not video_path(root, n).exists()]
        print(f"ntu{version}: {len(names) - len(absent)} of {len(names)} videos present")
        if absent:
            problems.append(f"ntu{version}: {len(absent)} videos missing, e.g. {absent[:3]}")
    return problems
