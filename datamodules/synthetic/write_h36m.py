"""Human3.6M writer: the official layout plus the una-dinosauria ``cameras.h5``.

``S*/MyPoseFeatures/D3_Positions/<Action>.cdf`` (1, N, 96) mm world frame,
``D3_Positions_mono/<Action>.<cam>.cdf`` (1, N, 96) mm camera frame, ``D2_Positions/<Action>.<cam>.cdf``
(1, N, 64) pixels (distortion included), ``S*/Videos/<Action>.<cam>.mp4`` at 50 fps, all in the
32-joint order of ``layouts.H36M32``. ``cameras.h5``: ``subject{N}/camera{1..4}/`` R (stored
transposed), T (camera centre, mm), f, c, k, p, Name (char codes) — X_cam = R·(X − T).
The first action of each subject carries a sub-action suffix ("Directions 1"), as real names do.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from cdflib.cdfwrite import CDF

from datamodules.layouts import H36M32
from datamodules.synthetic.camera import Camera, h36m_rig
from datamodules.synthetic.motion import perform, place
from datamodules.synthetic.render import film, write_video
from datamodules.synthetic.skeleton import to_layout

# Synthetic action → Human3.6M action name it is filed under (H36M itself carries no labels).
H36M_ACTIONS = {
    "wave": "Directions",
    "bow": "Greeting",
    "drink": "Eating",
    "phone": "Phoning",
    "squat": "SittingDown",
    "jumping_jacks": "Posing",
    "kick": "Walking",
    "punch": "Discussion",
}
SIZE = (320, 240)
FPS = 50
_KEY = 2


def write_pose_cdf(path: Path, pose: np.ndarray) -> None:
    """One record ``Pose`` (1, N, D) float32, as the official files hold it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    data = pose.reshape(1, len(pose), -1).astype(np.float32)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"})
    spec = {
        "Variable": "Pose",
        "Data_Type": CDF.CDF_FLOAT,
        "Num_Elements": 1,
        "Rec_Vary": True,
        "Dim_Sizes": list(data.shape[1:]),
    }
    cdf.write_var(spec, var_data=data)
    cdf.close()


def write_cameras_h5(path: Path, rigs: dict[int, list[Camera]]) -> None:
    """una-dinosauria layout; lengths in mm."""
    with h5py.File(path, "w") as f:
        for subject, cams in rigs.items():
            for i, cam in enumerate(cams, start=1):
                g = f.create_group(f"subject{subject}/camera{i}")
                g["R"] = cam.R.T
                g["T"] = (cam.T * 1000.0).reshape(3, 1)
                g["f"], g["c"] = cam.f.reshape(2, 1), cam.c.reshape(2, 1)
                g["k"], g["p"] = cam.k.reshape(3, 1), cam.p.reshape(2, 1)
                g["Name"] = np.array([float(ord(ch)) for ch in cam.name]).reshape(-1, 1)


def action_file_names(n_actions: int) -> list[tuple[str, str]]:
    """(synthetic action, file action name) of the first ``n_actions`` actions."""
    pairs = list(H36M_ACTIONS.items())[:n_actions]
    return [(a, f"{name} 1" if i == 0 else name) for i, (a, name) in enumerate(pairs)]


def write_sequence(
    root: Path, subject: int, action: str, name: str, cams: list[Camera], n_frames: int, seed: int
) -> None:
    """One (subject, action) performance, slowly turning and drifting, seen by the 4 cameras."""
    rng = np.random.default_rng([seed, _KEY, subject, list(H36M_ACTIONS).index(action)])
    t = np.arange(n_frames) / FPS
    yaw = rng.uniform(-np.pi, np.pi) + rng.uniform(-0.3, 0.3) * t
    position = rng.uniform(-0.5, 0.5, 2) + rng.uniform(-0.1, 0.1, 2) * t[:, None]
    world = place(perform(action, n_frames, FPS, rng), position, yaw)
    feats = root / f"S{subject}" / "MyPoseFeatures"
    write_pose_cdf(feats / "D3_Positions" / f"{name}.cdf", to_layout(world, H36M32) * 1000.0)
    for cam in cams:
        clip = film(world, cam, action, rng)
        stem = f"{name}.{cam.name}"
        write_pose_cdf(
            feats / "D3_Positions_mono" / f"{stem}.cdf", to_layout(clip.cam, H36M32) * 1e3
        )
        write_pose_cdf(feats / "D2_Positions" / f"{stem}.cdf", to_layout(clip.uv, H36M32))
        write_video(root / f"S{subject}" / "Videos" / f"{stem}.mp4", clip.frames, FPS)


def write_h36m(
    root: Path,
    subjects: tuple[int, ...],
    n_actions: int,
    n_frames: int,
    seed: int,
    size: tuple[int, int] = SIZE,
) -> int:
    """Every subject × first ``n_actions`` actions × 4 cameras, frames of ``size`` (W, H) (real:
    1000×1002); returns the number of videos."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rigs = {s: h36m_rig(np.random.default_rng([seed, _KEY, s]), size) for s in subjects}
    write_cameras_h5(root / "cameras.h5", rigs)
    for s in subjects:
        for action, name in action_file_names(n_actions):
            write_sequence(root, s, action, name, rigs[s], n_frames, seed)
    return len(subjects) * n_actions * 4
