"""Human3.6M preparation: per recording, decode the video once and store the protocol's frames.

Frames kept: index i % 5 == 0 for the training subjects, i % 64 == 0 for the test subjects
(``frame_step`` overrides both). Each is cropped around the root joint with the window of
``Human36MDataset`` (2.25 m at the root depth) widened by the augmentation margin of
``H36M_AUG``. Stored per frame: the crop JPEG, its region, the 32-joint D2 pixels (uv) and
D3 camera-frame millimetres (xyz); per video: subject, stem, action, camera, fx fy cx cy and the
true frame count min(video, poses). Alphabet: n frames kept, J = 32 joints.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from datamodules.h36m import H36M_AUG, crop_window
from datamodules.layouts import H36M32
from datamodules.prepare.runner import Job, Part
from datamodules.prepare.store import Margin, cut, store_box, write_jpeg
from datamodules.storage import h36m_files as files
from datamodules.video import VideoReader

CHUNK = 16  # frames decoded per call (a 1000×1002 frame is 3 MB)
ROOT = H36M32.index("pelvis")


def jobs(
    root: str | Path, subjects: tuple[int, ...] | None = None, frame_step: int | None = None
) -> list[Job]:
    """One job per recording of ``subjects`` (default: the protocol-1 subjects, train + test, found
    in ``root``; the missing ones are named on stderr); opens no video."""
    if not subjects:
        protocol = files.TRAIN_SUBJECTS + files.TEST_SUBJECTS
        subjects = tuple(s for s in protocol if (Path(root) / f"S{s}").is_dir())
        if missing := [s for s in protocol if s not in subjects]:
            print(f"h36m: subjects {missing} not found in {root}: not prepared", file=sys.stderr)
    out = []
    for split, group in (("train", files.TRAIN_SUBJECTS), ("test", files.TEST_SUBJECTS)):
        chosen = tuple(s for s in subjects if s in group) + (
            tuple(s for s in subjects if s not in files.TRAIN_SUBJECTS + files.TEST_SUBJECTS)
            if split == "train"
            else ()
        )
        if not chosen:
            continue
        step = frame_step or (files.TRAIN_STEP if split == "train" else files.TEST_STEP)
        ds = files.RawH36M(root, chosen, None, step)
        for s in ds.sequences:
            cam = ds.cameras[(s.subject, s.camera)]
            paths = {k: str(v) for k, v in ds.paths(s.subject, s.stem).items()}
            out.append(
                Job(
                    f"S{s.subject}/{s.stem}",
                    {
                        "subject": s.subject,
                        "stem": s.stem,
                        "action": s.action,
                        "camera": s.camera,
                        "paths": paths,
                        "f": cam.f.tolist(),
                        "c": cam.c.tolist(),
                        "step": step,
                    },
                )
            )
    return out


def run(job: Job, folder: Path, options: dict) -> Part:
    """Decode the recording once (sequential batches) and write its kept frames' crops."""
    a, margin = job.args, Margin(**options["margin"])
    d3, d2 = Path(a["paths"]["d3"]), Path(a["paths"]["d2"])
    video = VideoReader(a["paths"]["video"])
    n = min(files.cdf_frames(d3), files.cdf_frames(d2), video.num_frames)
    keep = np.arange(0, n, a["step"])
    uv, xyz = files.read_cdf_pose(d2, 2)[keep], files.read_cdf_pose(d3, 3)[keep]  # (n, 32, 2|3)
    window = crop_window(a["f"], xyz[:, ROOT, 2].astype(np.float64))
    x0, side, stored = store_box(uv[:, ROOT].astype(np.float64), window, margin)
    total = 0
    for lo in range(0, len(keep), CHUNK):
        frames = video.read(keep[lo : lo + CHUNK])
        for j, frame in enumerate(frames, start=lo):
            crop = cut(frame, tuple(x0[j]), int(side[j]), int(stored[j]))
            total += write_jpeg(folder / f"{keep[j]:06d}.jpg", crop, options["quality"])
    row = {
        "subject": a["subject"],
        "stem": a["stem"],
        "action": a["action"],
        "camera": a["camera"],
        "num_frames": int(n),
        "fx": a["f"][0],
        "fy": a["f"][1],
        "cx": a["c"][0],
        "cy": a["c"][1],
    }
    return Part(
        video=row,
        frames={"frame": keep.astype(np.int32), "x0": x0, "side": side, "stored": stored},
        poses={"uv": uv.astype(np.float32), "xyz": xyz.astype(np.float32)},
        bytes=total,
    )


def options(input_size: int = 256, quality: int = 90) -> dict:
    """Job options: the margin of ``H36M_AUG`` at ``input_size`` and the JPEG quality."""
    return {"margin": asdict(Margin.of(H36M_AUG, input_size)), "quality": quality}
