"""Penn Action writer: ``frames/NNNN/%06d.jpg`` + ``labels/NNNN.mat`` as the real dataset stores them.

Each synthetic action is stored under one of the 15 official Penn class strings (``PENN_ACTIONS``), so
a reader with the official class list reads it unchanged. Pixel coordinates are 1-based (MATLAB), as
the real labels are taken to be. A few videos
carry the real files' quirks: x/y stored as uint16 (like 0013.mat), a bbox one row short (1154.mat),
a last frame with x = y = 0 (0449.mat), every joint invisible (1516.mat).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from datamodules.layouts import PENN
from datamodules.prepare.store import write_jpeg
from datamodules.synthetic.camera import framing_camera, in_image
from datamodules.synthetic.motion import ACTIONS, perform, place
from datamodules.synthetic.render import film
from datamodules.synthetic.skeleton import to_layout

# Synthetic action → the official Penn Action class string it is stored as (labels only).
PENN_ACTIONS = {
    "wave": "tennis_serve",
    "squat": "squat",
    "jumping_jacks": "jumping_jacks",
    "kick": "baseball_pitch",
    "bow": "bowl",
    "punch": "bench_press",
    "drink": "tennis_forehand",
    "phone": "baseball_swing",
}
SIZE = (320, 240)
FPS = 30
QUIRKS = {2: "uint16", 3: "short_bbox", 4: "zero_last_frame", 5: "all_invisible"}
_KEY = 3


def _view(yaw_to_camera: float) -> str:
    """Penn's ``pose`` string from the angle between facing direction and the camera direction."""
    deg = np.degrees(yaw_to_camera) % 360
    return ("front", "left", "back", "right")[int(((deg + 45) % 360) // 90)]


def penn_labels(uv: np.ndarray, size: tuple[int, int], action: str, train: bool, view: str) -> dict:
    """The label dict of one video from 0-based body-joint pixels (T, J, 2)."""
    T = len(uv)
    xy = to_layout(uv, PENN)
    vis = in_image(xy, size)
    xy = xy + 1.0
    lo = np.clip(uv.min(axis=1) - 8, 0, None) + 1.0
    hi = np.minimum(uv.max(axis=1) + 8, np.array(size) - 1) + 1.0
    return {
        "action": PENN_ACTIONS[action],
        "pose": view,
        "x": xy[..., 0].astype(np.float64),
        "y": xy[..., 1].astype(np.float64),
        "visibility": vis.astype(np.uint8),
        "train": np.array([[1 if train else -1]], dtype=np.int32),
        "bbox": np.concatenate([lo, hi], axis=1).astype(np.float64),
        "dimensions": np.array([[size[1], size[0], T]], dtype=np.uint16),
        "nframes": np.array([[T]], dtype=np.uint8 if T < 256 else np.uint16),
    }


def apply_quirk(labels: dict, quirk: str | None) -> dict:
    """Reproduce one of the real files' irregularities."""
    if quirk == "uint16":
        for k in ("x", "y", "bbox"):
            labels[k] = np.round(np.clip(labels[k], 0, None)).astype(np.uint16)
    elif quirk == "short_bbox":
        labels["bbox"] = labels["bbox"][:-1]
    elif quirk == "zero_last_frame":
        labels["x"][-1], labels["y"][-1], labels["visibility"][-1] = 0, 0, 0
    elif quirk == "all_invisible":
        labels["visibility"][:] = 0
    return labels


def write_video_sample(root: Path, index: int, action: str, train: bool, n_frames: int, seed: int):
    """Render and write video ``index`` (1-based); returns its label dict."""
    rng = np.random.default_rng([seed, _KEY, index])
    local = perform(action, n_frames, FPS, rng)
    yaw = rng.uniform(-np.pi, np.pi)
    world = place(local, np.zeros(2), yaw)
    camera = framing_camera(rng, np.array([0, 0, 1.0]), rng.uniform(0.5, 0.85) * SIZE[1], SIZE)
    clip = film(world, camera, action, rng)
    name = f"{index:04d}"
    for t, frame in enumerate(clip.frames):
        write_jpeg(root / "frames" / name / f"{t + 1:06d}.jpg", frame)
    to_camera = np.arctan2(*(camera.T[[1, 0]])) - yaw
    labels = penn_labels(clip.uv, SIZE, action, train, _view(to_camera))
    labels = apply_quirk(labels, QUIRKS.get(index))
    (root / "labels").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "labels" / f"{name}.mat", labels)
    return labels


def write_penn(root: Path, videos_per_action: int, frames: tuple[int, int], seed: int) -> int:
    """Write ``videos_per_action`` videos of every action (alternately train / test) under
    ``root``; returns the number of videos."""
    rng = np.random.default_rng([seed, _KEY])
    jobs = [(a, v) for v in range(videos_per_action) for a in ACTIONS]
    lengths = rng.integers(frames[0], frames[1] + 1, len(jobs))
    for i, ((action, v), n) in enumerate(zip(jobs, lengths)):
        write_video_sample(Path(root), i + 1, action, v % 2 == 0, int(n), seed)
    return len(jobs)
