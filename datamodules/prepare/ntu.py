"""NTU RGB+D preparation: per sample, decode the video once and store every ``video_step``-th frame.

The clip reader takes frames every ``video_step`` (2) of the video, so those are the frames kept.
Every kept frame of a video is cut with ONE region: the union, over every clip the reader can draw
(each start, each subsample of training and evaluation, each ``clip_lengths``), of the clip's box
(``clip_box`` of its joints in ``layout``) widened by the augmentation margin of ``NTU_AUG``;
stored at the resolution the smallest such box needs. Stored per video: the main actor's colour
pixels (uv), camera-frame millimetres (xyz) and validity for every frame, the video size and the
frame counts. Alphabet: n frames, J = 25 Kinect joints.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from datamodules.base import clip_indices
from datamodules.layouts import NTU25, convert, get_layout
from datamodules.ntu import (
    MISSING_LISTS,
    NTU_AUG,
    TEST_SUBSAMPLE,
    TRAIN_SUBSAMPLE,
    main_actor,
    parse_skeleton,
    read_missing_list,
    skeleton_names,
    video_path,
)
from datamodules.prepare.runner import Job, Part
from datamodules.prepare.store import Margin, cut, store_box, write_jpeg
from datamodules.transforms import clip_box
from datamodules.video import VideoReader

CHUNK = 8  # frames decoded per call (a 1920×1080 frame is 6 MB)


def jobs(root: str | Path, version: int = 60) -> list[Job]:
    """One job per skeleton file of the release not on the missing list; opens no video."""
    root = Path(root)
    missing = root / MISSING_LISTS[version]
    skip = read_missing_list(missing) if missing.is_file() else set()
    keep = [n for n in skeleton_names(root / "nturgb+d_skeletons", version) if n not in skip]
    return [
        Job(
            n,
            {
                "skeleton": str(root / "nturgb+d_skeletons" / f"{n}.skeleton"),
                "video": str(video_path(root, n)),
            },
        )
        for n in keep
    ]


def clip_boxes(uv: np.ndarray, valid: np.ndarray, size: tuple[int, int], options: dict):
    """Centres (C, 2) and windows (C,) of every clip the reader can draw from joints uv (n, J, 2)
    and valid (n, J) of a video of ``size`` (W, H)."""
    step, n = options["video_step"], len(uv)
    steps = -(-n // step)
    centres, windows = [], []
    for T in options["clip_lengths"]:
        for sub in sorted({*TRAIN_SUBSAMPLE, TEST_SUBSAMPLE, *options["subsamples"]}):
            span = (T - 1) * sub + 1
            starts = range(max(1, steps - span + 1)) if steps >= span else [None]
            for s in starts:
                idx = (
                    clip_indices(steps, T, "middle", sub)[0]
                    if s is None
                    else (s + np.arange(T) * sub)
                )
                idx = np.minimum(idx * step, n - 1)
                c, w = clip_box(uv[idx], valid[idx], size[::-1])
                centres.append(c)
                windows.append(w)
    return np.array(centres), np.array(windows)


def run(job: Job, folder: Path, options: dict) -> Part:
    """Parse the skeleton, decode the video once (sequential batches), write the kept frames."""
    margin, layout = Margin(**options["margin"]), get_layout(options["layout"])
    sk = parse_skeleton(job.args["skeleton"])
    row = {"name": job.key, "skeleton_frames": sk.num_frames}
    try:
        xyz, uv, valid = main_actor(sk)
    except ValueError:  # no body at all: the reader reports the sample as bad, as it does raw
        empty = np.zeros(0, np.int32)
        frames = {"frame": empty, "x0": np.zeros((0, 2), np.int32), "side": empty, "stored": empty}
        return Part(row | {"num_frames": 0, "width": 0, "height": 0}, frames, {})
    video = VideoReader(job.args["video"])
    n = min(len(xyz), video.num_frames)
    xyz, uv, valid = xyz[:n], uv[:n], valid[:n]
    size = video.size
    scaled = uv * (size[0] / 1920.0) if size[0] != 1920 else uv
    joints, lvalid = convert(np.concatenate([scaled, xyz], axis=-1), valid, NTU25, layout)
    centres, windows = clip_boxes(joints[..., :2], lvalid, size, options)
    reach = margin.span(windows)[:, None] / 2.0  # (C, 1) half side of each augmented clip crop
    lo, hi = (centres - reach).min(axis=0), (centres + reach).max(axis=0)
    side_px = float(np.max(hi - lo))
    # one region: a window whose margin span is the union's side, at the smallest clip's resolution
    x0, side, stored = store_box(
        (lo + hi)[None] / 2.0,
        np.array([side_px]),
        Margin(margin.input_size, margin.min_scale, 1.0, 0.0, 0.0),
    )
    q = np.ceil(side * margin.input_size / (windows.min() * margin.min_scale))
    stored = np.clip(q, 8, side).astype(np.int32)
    keep = np.arange(0, n, options["video_step"])
    total = 0
    for lo_i in range(0, len(keep), CHUNK):
        for f, frame in zip(keep[lo_i : lo_i + CHUNK], video.read(keep[lo_i : lo_i + CHUNK])):
            crop = cut(frame, tuple(x0[0]), int(side[0]), int(stored[0]))
            total += write_jpeg(folder / f"{f:06d}.jpg", crop, options["quality"])
    k = len(keep)
    frames = {
        "frame": keep.astype(np.int32),
        "x0": np.repeat(x0, k, axis=0),
        "side": np.repeat(side, k),
        "stored": np.repeat(stored, k),
    }
    poses = {"uv": uv.astype(np.float64), "xyz": xyz.astype(np.float64), "valid": valid}
    row |= {"num_frames": n, "width": size[0], "height": size[1]}
    return Part(row, frames, poses, total)


def options(
    input_size: int = 256,
    quality: int = 90,
    clip_lengths=(20,),
    layout: str = "pa20j",
    video_step: int = 2,
    subsamples=(),
    version: int = 60,
) -> dict:
    """Job options: margin of ``NTU_AUG``, JPEG quality, the clips the region must cover."""
    return {
        "margin": asdict(Margin.of(NTU_AUG, input_size)),
        "quality": quality,
        "clip_lengths": [int(t) for t in clip_lengths],
        "layout": layout,
        "video_step": video_step,
        "subsamples": [int(s) for s in subsamples],
        "version": version,
    }
