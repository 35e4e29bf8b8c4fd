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

Structure: ``NTUSamples.make_sample`` builds a clip's sample (box, depth range, layout); the record
sources of ``datamodules.storage`` (``RawNTU``, ``PreparedNTU``, ``NTUChunks``) read the videos.
Alphabet: T frames, J joints.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from datamodules.base import clip_indices, require_dir, sample_rng, to_tensors
from datamodules.layouts import NTU25, Layout, convert, get_layout
from datamodules.storage.ntu_files import (  # noqa: F401  (re-exported: the reader's public names)
    COLOR_SIZE,
    MISSING_LISTS,
    NAME,
    NUM_JOINTS,
    VIDEO_DIRS,
    XSUB_TRAIN_60,
    XSUB_TRAIN_120,
    XVIEW_TRAIN_CAMERAS,
    RawNTU,
    Skeletons,
    header_frames,
    is_train,
    main_actor,
    parse_skeleton,
    read_missing_list,
    release_names,
    skeleton_names,
    video_path,
)
from datamodules.storage.ntu_prepared import ClipNeeds, PreparedNTU
from datamodules.storage.records import Frames, NTUVideo
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    augment_ranges,
    clip_box,
    crop_sample,
    depth_range,
)

NTU_AUG = AugmentRanges(angle=0.0, scales=(0.7, 1.0, 1.3), flip=True, translate=40.0)
TRAIN_SUBSAMPLE = (1, 2, 3)
TEST_SUBSAMPLE = 2


def root_depth(z: np.ndarray, valid: np.ndarray, root: int) -> float:
    """Mean root depth over the clip (mm); the mean valid joint depth where the root is never
    valid. z (T, J), valid (T, J)."""
    use = valid[:, root] if valid[:, root].any() else valid
    zs = z[:, root][use] if valid[:, root].any() else z[use]
    if not len(zs):
        raise ValueError("no valid depth in the clip")
    return float(zs.mean())


def in_split(name: str, benchmark: str, version: int, split: str) -> bool:
    """Sample ``name`` belongs to ``split`` of ``benchmark``."""
    return is_train(name, benchmark, version) == (split == "train")


def steps(num_frames: int, video_step: int) -> int:
    """Frames of a video taken every ``video_step``."""
    return -(-num_frames // video_step)


def multi_clips(
    counts: dict[str, int], names: list[str], needs: ClipNeeds
) -> list[tuple[int, np.ndarray]]:
    """(video index, frame indices (T,)) of every clip of every video of ``names`` with a frame
    count in ``counts`` (one set per subsample)."""
    items = []
    for v, name in enumerate(names):
        if (n := counts.get(name)) is None:
            continue
        for sub in needs.subsample:
            clips = clip_indices(steps(n, needs.video_step), needs.T, "multi", sub)
            items += [(v, c * needs.video_step) for c in clips]
    return items


@dataclass(frozen=True)
class NTUSamples:
    """The NTU sample builder: the clip box, the depth range, targets in ``layout``."""

    layout: Layout
    input_size: int

    def make_sample(self, clip: NTUVideo, frames: Frames | None, params: AugmentParams) -> dict:
        """The sample dict (``datamodules.sample``, clip form) of a clip (``NTUVideo.take``):
        frames (T, H, W, 3) uint8 original frames or stored crops, None for poses only."""
        uv = clip.uv * (clip.size[0] / COLOR_SIZE[0]) if clip.size[0] != COLOR_SIZE[0] else clip.uv
        joints, valid = convert(
            np.concatenate([uv, clip.xyz], axis=-1), clip.valid, NTU25, self.layout
        )
        uv, xyz = joints[..., :2], joints[..., 2:]
        center, window = clip_box(uv, valid, clip.size[::-1])
        d = root_depth(xyz[..., 2], valid, self.layout.index("pelvis"))
        origin, span = depth_range(d, params.scale)
        z = (xyz[..., 2:] - origin) / span
        out = crop_sample(
            None if frames is None else frames.images,
            np.concatenate([uv, z], axis=-1),
            valid,
            center,
            window,
            self.input_size,
            self.layout.flip,
            params,
            None if frames is None else frames.stored,
        )
        out.update(
            pose_mm=(xyz[:, self.layout.flip] if params.flip else xyz).astype(np.float32),
            depth=np.tile(np.float32([origin, span]), (len(xyz), 1)),
            camera=np.zeros(4, np.float32),
            pck_ref=np.zeros(len(xyz), np.float32),
            action=np.int64(int(clip.name[-3:]) - 1),
            dataset="ntu",
            sample_id=f"ntu/{clip.name}/{clip.start}",
            video_id=f"ntu/{clip.name}",
        )
        return out


class NTUDataset(Dataset):
    """NTU RGB+D clips as sample dicts (``datamodules.sample``, clip form), 3D, with the action.

    mode "images": video frames + Kinect poses; "poses": Kinect poses only (no ``image``; only the
    skeleton folder is read). clip_sampling: "random" (default for training), "middle" (default
    for evaluation) or "multi" (every clip of every video: one item per clip, ``video_id`` groups
    them). subsample: int or a sequence drawn from per clip (default (1, 2, 3) when augmenting,
    else 2), counted on the video already taken every ``video_step`` frames. The videos come from
    ``source`` when given (e.g. ``NTUChunks``), else from ``prepared``, else from ``root``.
    """

    def __init__(
        self,
        root: str | Path | None,
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
        source: RawNTU | PreparedNTU | None = None,
    ):
        if split not in ("train", "test") or mode not in ("images", "poses"):
            raise ValueError(f"NTUDataset: bad split {split!r} or mode {mode!r}")
        if version not in MISSING_LISTS:
            raise ValueError(f"NTUDataset: version must be 60 or 120, got {version!r}")
        self.mode, self.layout, self.T = mode, get_layout(layout), clip_length
        self.benchmark = benchmark  # the carved validation split groups by it (splits.py)
        self.input_size, self.video_step = input_size, video_step
        self.augment = split == "train" if augment is None else augment
        self.aug = augment_ranges(aug, NTU_AUG)
        self.clip_sampling = clip_sampling or ("random" if split == "train" else "middle")
        default = TRAIN_SUBSAMPLE if self.augment else TEST_SUBSAMPLE
        self.subsample = tuple(np.atleast_1d(subsample or default).astype(int).tolist())
        self.build = NTUSamples(self.layout, input_size)
        needs = ClipNeeds(
            self.layout.name,
            clip_length,
            video_step,
            self.subsample,
            self.aug,
            input_size,
            version,
            frozenset({*TRAIN_SUBSAMPLE, TEST_SUBSAMPLE}),
        )
        keep = functools.partial(in_split, benchmark=benchmark, version=version, split=split)
        self.source = source or (
            RawNTU(root, mode == "images", version, keep, missing_list)
            if prepared is None
            else PreparedNTU(prepared, mode == "images", needs, keep, missing_list)
        )
        self.items = None
        if self.clip_sampling == "multi":
            self.items = multi_clips(self.source.frame_counts(), self.names, needs)

    @property
    def names(self) -> list[str]:
        """The sample names of the split (its videos, in order)."""
        return self.source.names

    @property
    def excluded(self) -> dict[str, str]:
        """{skeleton file: reason} of the samples left out as unreadable (multi clips)."""
        return self.source.excluded

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.source)

    def __getitem__(self, i: int) -> dict:
        v, fixed = self.items[i] if self.items is not None else (i, None)
        video = self.source.read(v)
        n = len(video.xyz)
        rng = sample_rng()
        params = self.aug.sample(rng) if self.augment else AugmentParams()
        if fixed is None:
            sub = int(rng.choice(self.subsample)) if len(self.subsample) > 1 else self.subsample[0]
            fixed = clip_indices(steps(n, self.video_step), self.T, self.clip_sampling, sub, rng)[0]
            fixed = fixed * self.video_step
        idx = np.minimum(fixed, n - 1)
        return to_tensors(self.build.make_sample(video.take(idx), video.frames(idx), params))


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
