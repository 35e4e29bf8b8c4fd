"""Penn Action: ``frames/NNNN/%06d.jpg`` + ``labels/NNNN.mat`` → clips for pose and action.

Label facts handled (all seen in real files): x / y / bbox stored as float64, uint16 or uint8 (cast
before arithmetic); ``bbox`` one row shorter than ``nframes`` (last row repeated); videos whose
every joint is invisible; zero coordinates. A joint is valid iff visibility ≠ 0 and x ≠ 0 and y ≠ 0.
Coordinates are 1-based MATLAB pixels and become 0-based here.

Crop (official): the union over the clip's first, middle and last frames of the valid-joint box
enlarged ×1.5, squared, side ≥ 32; when those frames hold no valid joint the whole clip's joints
are used, and when the clip has none at all the whole image. ``pck_ref`` (T,) is the side of the
dataset's per-frame ``bbox`` (max(w, h)): the usual Penn Action PCK@0.2 reference.

Structure: ``PennSamples.make_sample`` builds a clip's sample; ``storage.penn_files.PennFiles``
reads the labels and frames. Alphabet: T frames per clip, J joints, N videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from datamodules.base import clip_indices, no_3d, sample_rng, to_tensors
from datamodules.layouts import PENN, Layout, convert, get_layout
from datamodules.storage.penn_files import (  # noqa: F401  (re-exported: the reader's public names)
    ACTIONS,
    PennClip,
    PennFiles,
    PennVideo,
    load_label,
)
from datamodules.storage.records import Frames
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    augment_ranges,
    clip_box,
    crop_sample,
)

SPLIT_SIZES = {"train": 1258, "test": 1068}
PENN_AUG = AugmentRanges(angle=30.0, scales=(0.7, 1.0, 1.3), flip=True, translate=40.0)


def whole_video_indices(
    num_frames: int, T: int, rng: np.random.Generator | None = None, offset: float = 0.5
) -> np.ndarray:
    """(T,) frame indices spread over the whole video: the video cut into T equal segments, one
    frame of each — at ``offset`` of the segment (0.5: its middle), or with ``rng`` a random one
    (temporal jitter and speed augmentation at once). A video shorter than T repeats frames."""
    edges = np.linspace(0.0, num_frames, T + 1)
    if rng is None:
        position = edges[:-1] + offset * (edges[1:] - edges[:-1])
    else:
        position = rng.uniform(edges[:-1], edges[1:])
    return np.clip(np.floor(position), 0, num_frames - 1).astype(np.int64)


def clip_items(
    videos: list[PennVideo],
    sampling: str,
    T: int,
    subsample: int,
    clip_step: int | None,
    flip_clips: bool,
    offsets: Sequence[float] = (0.5,),
) -> tuple[list[tuple[int, np.ndarray | None]], int]:
    """(video, fixed clip indices or None = drawn at load time) per item, and the number of plain
    items: with ``flip_clips`` the fixed clips follow once more (mirrored); "whole" gives one clip
    per segment offset of ``offsets``."""
    if sampling in ("random", "whole_random"):
        return [(v, None) for v in range(len(videos))], 0
    if sampling == "whole":
        items = [
            (v, whole_video_indices(video.num_frames, T, offset=offset))
            for v, video in enumerate(videos)
            for offset in offsets
        ]
    else:
        items = [
            (v, clip)
            for v, video in enumerate(videos)
            for clip in clip_indices(video.num_frames, T, sampling, subsample, step=clip_step)
        ]
    return (items + items if flip_clips else items), len(items)


@dataclass(frozen=True)
class PennSamples:
    """The Penn Action sample builder: the clip box and the targets in ``layout``; ``occluded``
    counts the joints marked occluded as valid."""

    layout: Layout
    input_size: int
    occluded: bool = False

    def make_sample(self, clip: PennClip, frames: Frames | None, params: AugmentParams) -> dict:
        """The sample dict (``datamodules.sample``, clip form) of ``clip``: frames (T, H, W, 3)
        uint8, None for poses only (poses normalised to the clip box)."""
        video, idx = clip.video, clip.idx
        mask = video.annotated if self.occluded else video.valid
        joints, valid = convert(video.joints[idx], mask[idx], PENN, self.layout)
        center, window = clip_box(video.joints[idx], mask[idx], video.image_hw)
        out = crop_sample(
            None if frames is None else frames.images,
            joints,
            valid,
            center,
            window,
            self.input_size,
            self.layout.flip,
            params,
        )
        box = video.bbox[idx]
        out.update(no_3d(len(self.layout), (len(idx),)))
        out.update(
            pck_ref=np.max(box[:, 2:] - box[:, :2], axis=1).astype(np.float32),
            action=np.int64(video.action),
            dataset="penn",
            sample_id=f"penn/{video.video_id}/{idx[0]}-{idx[-1]}"
            + ("/flip" if clip.mirrored else ""),
            video_id=video.video_id,
        )
        return out


class PennActionDataset(Dataset):
    """Penn Action clips as sample dicts (see ``datamodules.sample``), 2D, merged ``layout``.

    clip_sampling defaults to "random" on train, "middle" on test; "multi" yields every clip of
    every video (``clip_step`` apart, default T // 2), each carrying its ``video_id``; "whole"
    one clip of T frames spread over the whole video (``whole_video_indices``: segment middles),
    "whole_random" the same with a random frame per segment (training); subsample is unused there;
    whole_offsets: "whole" yields one clip per offset in the segments (default (0.5,): middles),
    all with the video's ``video_id`` (several views of the video for its multi-clip score).
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
        whole_offsets: Sequence[float] = (0.5,),
    ):
        if split not in SPLIT_SIZES or mode not in ("images", "poses"):
            raise ValueError(f"PennActionDataset: bad split {split!r} or mode {mode!r}")
        self.source = PennFiles(root, mode == "images", split == "train")
        self.videos, self.excluded = (
            self.source.videos,
            self.source.excluded,
        )  # excluded: unreadable
        self.layout, self.mode, self.T = get_layout(layout), mode, clip_length
        self.flip_clips, self.input_size = flip_clips, input_size
        self.sampling = clip_sampling or ("random" if split == "train" else "middle")
        default_sub = (1, 2) if self.sampling == "random" else 2
        self.subsample = tuple(np.atleast_1d(subsample or default_sub).tolist())
        self.augment = split == "train" if augment is None else augment
        self.aug = augment_ranges(aug, PENN_AUG)
        self.build = PennSamples(self.layout, input_size, occluded)
        self.items, self.num_plain = clip_items(
            self.videos,
            self.sampling,
            clip_length,
            self.subsample[0],
            clip_step,
            flip_clips,
            tuple(whole_offsets),
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        v, idx = self.items[i]
        video = self.videos[v]
        rng = sample_rng()
        if idx is None and self.sampling == "whole_random":
            idx = whole_video_indices(video.num_frames, self.T, rng)
        elif idx is None:
            sub = int(rng.choice(self.subsample))
            idx = clip_indices(video.num_frames, self.T, "random", sub, rng)[0]
        params = self.aug.sample(rng) if self.augment else AugmentParams()
        mirrored = self.flip_clips and i >= self.num_plain
        clip = PennClip(video, idx, mirrored)
        params = AugmentParams(flip=True) if mirrored else params
        return to_tensors(self.build.make_sample(clip, self.source.frames(video, idx), params))
