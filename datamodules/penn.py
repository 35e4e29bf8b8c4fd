"""Penn Action: ``frames/NNNN/%06d.jpg`` + ``labels/NNNN.mat`` → clips for pose and action.

Label facts handled (all seen in real files): x / y / bbox stored as float64, uint16 or uint8 (cast
before arithmetic); ``bbox`` one row shorter than ``nframes`` (last row repeated); videos whose
every joint is invisible; zero coordinates. A joint is valid iff visibility ≠ 0 and x ≠ 0 and y ≠ 0.
Coordinates are 1-based MATLAB pixels and become 0-based here.

Crop (official): the union over the clip's first, middle and last frames of the valid-joint box
enlarged ×1.5, squared, side ≥ 32; when those frames hold no valid joint the whole clip's joints
are used, and when the clip has none at all the whole image. ``pck_ref`` (T,) is the side of the
dataset's per-frame ``bbox`` (max(w, h)): the usual Penn Action PCK@0.2 reference.
Alphabet: T frames per clip, J joints, N videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError
from torch.utils.data import Dataset

from datamodules.base import (
    clip_indices,
    load_each,
    no_3d,
    read_image,
    require_dir,
    sample_rng,
    to_tensors,
)
from datamodules.layouts import PENN, convert, get_layout
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    augment_ranges,
    clip_box,
    crop_sample,
)

ACTIONS = (
    "baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk", "golf_swing",
    "jump_rope", "jumping_jacks", "pullup", "pushup", "situp", "squat", "strum_guitar",
    "tennis_forehand", "tennis_serve",
)  # fmt: skip
SPLIT_SIZES = {"train": 1258, "test": 1068}
PENN_AUG = AugmentRanges(angle=30.0, scales=(0.7, 1.0, 1.3), flip=True, translate=40.0)


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


def whole_video_indices(
    num_frames: int, T: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(T,) frame indices spread over the whole video: the video cut into T equal segments, one
    frame of each — its middle, or with ``rng`` a random one (temporal jitter and speed
    augmentation at once). A video shorter than T repeats frames."""
    edges = np.linspace(0.0, num_frames, T + 1)
    if rng is None:
        position = (edges[:-1] + edges[1:]) / 2
    else:
        position = rng.uniform(edges[:-1], edges[1:])
    return np.clip(np.floor(position), 0, num_frames - 1).astype(np.int64)


class PennActionDataset(Dataset):
    """Penn Action clips as sample dicts (see ``datamodules.sample``), 2D, merged ``layout``.

    clip_sampling defaults to "random" on train, "middle" on test; "multi" yields every clip of
    every video (``clip_step`` apart, default T // 2), each carrying its ``video_id``; "whole"
    one clip of T frames spread over the whole video (``whole_video_indices``: segment middles),
    "whole_random" the same with a random frame per segment (training); subsample is unused there.
    subsample: frame step, or a set to draw from per clip (default (1, 2) for random clips, else 2).
    mode="poses" reads only ``labels/`` and yields no ``image``: poses normalised to the clip box;
    ``root`` may then also be the labels folder itself (a folder of NNNN.mat files).
    occluded: also count the joints Penn marks occluded (visibility 0: ~21 % of the training
    joints, nearly all with coordinates) as valid — for annotated-pose training, where they are
    annotations like any other (the official rule, False, drops them).
    flip_clips (evaluation, fixed clips): every clip once more, mirrored (joints swapped by the
    layout's flip): the official multi-clip protocol scores each clip with and without flip.
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        layout: str = "pa16j",
        clip_length: int = 16,
        mode: Literal["images", "poses"] = "images",
        clip_sampling: Literal["random", "middle", "multi", "whole", "whole_random"] | None = None,
        subsample: int | Sequence[int] | None = None,
        input_size: int = 256,
        augment: bool | None = None,
        aug: AugmentRanges | dict | None = None,
        clip_step: int | None = None,
        occluded: bool = False,
        flip_clips: bool = False,
    ):
        if split not in SPLIT_SIZES or mode not in ("images", "poses"):
            raise ValueError(f"PennActionDataset: bad split {split!r} or mode {mode!r}")
        self.root = require_dir(root, "Penn Action root")
        labels = self.root / "labels"
        if mode == "poses" and not labels.is_dir() and any(self.root.glob("*.mat")):
            labels = self.root  # the labels folder itself
        labels = require_dir(labels, "Penn Action labels")
        if mode == "images":
            self.frames = require_dir(self.root / "frames", "Penn Action frames")
        self.layout, self.mode, self.T = get_layout(layout), mode, clip_length
        self.occluded, self.flip_clips = occluded, flip_clips
        self.num_plain = 0
        self.input_size = input_size
        self.sampling = clip_sampling or ("random" if split == "train" else "middle")
        default_sub = (1, 2) if self.sampling == "random" else 2
        self.subsample = tuple(np.atleast_1d(subsample or default_sub).tolist())
        self.augment = split == "train" if augment is None else augment
        self.aug = augment_ranges(aug, PENN_AUG)
        files = sorted(labels.glob("*.mat"))
        if not files:
            raise FileNotFoundError(f"Penn Action: no labels/*.mat in {labels}")
        # a garbage label file is left out (listed once, with the reason), not the run
        loaded, self.excluded = load_each(files, load_label, f"Penn Action labels in {labels}")
        self.videos = [v for v in loaded if v.train == (split == "train")]
        self.items = self._index(clip_step)

    def _index(self, clip_step: int | None) -> list[tuple[int, np.ndarray | None]]:
        """(video, fixed clip indices or None = drawn at load time) per item; with
        ``flip_clips`` the fixed clips once more, mirrored, after ``self.num_plain`` items."""
        if self.sampling in ("random", "whole_random"):
            return [(v, None) for v in range(len(self.videos))]
        if self.sampling == "whole":
            items = [(v, whole_video_indices(video.num_frames, self.T))
                     for v, video in enumerate(self.videos)]  # fmt: skip
            self.num_plain = len(items)
            return items + items if self.flip_clips else items
        sub = self.subsample[0]
        items = [
            (v, clip)
            for v, video in enumerate(self.videos)
            for clip in clip_indices(video.num_frames, self.T, self.sampling, sub, step=clip_step)
        ]
        self.num_plain = len(items)
        return items + items if self.flip_clips else items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        v, frames_idx = self.items[i]
        video = self.videos[v]
        rng = sample_rng()
        if frames_idx is None and self.sampling == "whole_random":
            frames_idx = whole_video_indices(video.num_frames, self.T, rng)
        elif frames_idx is None:
            sub = int(rng.choice(self.subsample))
            frames_idx = clip_indices(video.num_frames, self.T, "random", sub, rng)[0]
        mask = video.annotated if self.occluded else video.valid
        joints, valid = convert(video.joints[frames_idx], mask[frames_idx], PENN, self.layout)
        center, window = clip_box(video.joints[frames_idx], mask[frames_idx], video.image_hw)
        params = self.aug.sample(rng) if self.augment else AugmentParams()
        mirrored = self.flip_clips and i >= self.num_plain
        if mirrored:
            params = AugmentParams(flip=True)
        images = None
        if self.mode == "images":
            folder = self.frames / video.video_id
            images = np.stack([read_image(folder / f"{f + 1:06d}.jpg") for f in frames_idx])
        out = crop_sample(
            images, joints, valid, center, window, self.input_size, self.layout.flip, params
        )
        box = video.bbox[frames_idx]
        out.update(no_3d(len(self.layout), (self.T,)))
        out.update(
            pck_ref=np.max(box[:, 2:] - box[:, :2], axis=1).astype(np.float32),
            action=np.int64(video.action),
            dataset="penn",
            sample_id=f"penn/{video.video_id}/{frames_idx[0]}-{frames_idx[-1]}"
            + ("/flip" if mirrored else ""),
            video_id=video.video_id,
        )
        return to_tensors(out)
