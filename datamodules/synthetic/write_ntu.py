"""NTU RGB+D writer: ``nturgb+d_rgb/<id>_rgb.avi`` + ``nturgb+d_skeletons/<id>.skeleton`` in the
Kinect v2 text format, and ``NTU_RGBD_samples_with_missing_skeletons.txt``.

One performance per (subject, replication, action) is filmed by three cameras (C001 −45°, C002 0°,
C003 +45°), as in NTU. Skeleton 3D is in metres in the Kinect camera frame (x right in the image,
y up, z forward); colorX/colorY are pixels of the 1920×1080 Kinect colour camera, of which the
RGB video is a 1/6-size (320×180) copy; depthX/depthY are pixels of a 512×424 depth map. Sample 1 also holds a static "noise" body in the middle frames, the last sample has 0 bodies
in every frame and is listed as missing (both as in the real data).

NTU's clips have a look of their own (``lab_look``), as the real NTU RGB+D footage differs from
MPII's photos and Human3.6M's studio: filmed in a dim room under warm light by the Kinect's colour
camera, softer and noisier. The pose data never shows it, so a pose network trained on MPII and
Human3.6M meets a new domain on NTU, which end-to-end fine-tuning adapts to (the paper's Table 5).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from datamodules.layouts import NTU25
from datamodules.synthetic.camera import in_image, look_at
from datamodules.synthetic.motion import ACTIONS, perform, place
from datamodules.synthetic.render import film, write_video
from datamodules.synthetic.skeleton import to_layout

# Synthetic action → the NTU RGB+D 60 action id (A001 drink water, A008 sitting down, A023 hand
# waving, A024 kicking something, A027 jump up, A028 phone call, A031 pointing, A035 nod head/bow).
NTU_ACTIONS = {
    "drink": 1,
    "squat": 8,
    "wave": 23,
    "kick": 24,
    "jumping_jacks": 27,
    "phone": 28,
    "punch": 31,
    "bow": 35,
}
SIZE = (320, 180)
COLOR_SIZE = (1920, 1080)
FOCAL = 175.0  # pixels at SIZE; scaled with the frame width
FPS = 30
CAMERA_AZIMUTH = {1: -45.0, 2: 0.0, 3: 45.0}
DEPTH_F, DEPTH_C = np.array([366.4, 366.5]), np.array([256.3, 208.5])
MISSING_LIST = "NTU_RGBD_samples_with_missing_skeletons.txt"
BODY_ID = 72057594037900000  # Kinect tracking ids are 17-digit integers
_KEY = 4
LAB_GAIN = (0.65, 0.85)  # brightness of the room's light, drawn per clip
LAB_TINT = np.array([1.0, 0.92, 0.8])  # warm light: RGB gains
LAB_BLUR = 0.6  # Gaussian sigma in pixels at SIZE (the Kinect colour camera's softness)
LAB_NOISE = 5  # sensor noise, uniform in ± this many grey levels


def sample_name(setup: int, camera: int, subject: int, replication: int, action: int) -> str:
    return f"S{setup:03d}C{camera:03d}P{subject:03d}R{replication:03d}A{action:03d}"


def kinect_joints(cam: np.ndarray, camera) -> np.ndarray:
    """Camera-frame body joints (T, J, 3) → NTU joint rows (T, 25, 12)."""
    xyz = to_layout(cam, NTU25)
    kin = xyz * np.array([1.0, -1.0, 1.0])
    depth_px = DEPTH_F * xyz[..., :2] / xyz[..., 2:3] + DEPTH_C
    video_px = camera.project(xyz)
    colour_px = video_px * (COLOR_SIZE[0] / camera.size[0])
    quat = np.zeros(xyz.shape[:2] + (4,))
    quat[..., 0] = 1.0
    state = np.where(in_image(video_px, camera.size), 2.0, 1.0)[..., None]
    return np.concatenate([kin, depth_px, colour_px, quat, state], axis=-1)


def lab_look(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """NTU's own domain: RGB frames (T, H, W, 3) uint8 dimmed and tinted by the room's light,
    softened and given sensor noise."""
    sigma = LAB_BLUR * frames.shape[2] / SIZE[0]
    lit = frames.astype(np.float32) * (rng.uniform(*LAB_GAIN) * LAB_TINT).astype(np.float32)
    out = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in lit])
    out += rng.integers(-LAB_NOISE, LAB_NOISE + 1, out.shape, dtype=np.int8)
    np.clip(out, 0.0, 255.0, out=out)
    return (out + 0.5).astype(np.uint8)  # rounded


def skeleton_text(bodies: list[tuple[int, np.ndarray, np.ndarray]], n_frames: int) -> str:
    """The .skeleton text: ``bodies`` = (body id, (T,) present mask, (T, 25, 12) rows)."""
    lines = [str(n_frames)]
    for t in range(n_frames):
        present = [(bid, rows[t]) for bid, mask, rows in bodies if mask[t]]
        lines.append(str(len(present)))
        for bid, rows in present:
            lines.append(f"{bid} 0 1 1 1 1 0 {rows[0, 0] * 0.1:.7g} {rows[0, 1] * 0.05:.7g} 2")
            lines.append(str(len(rows)))
            lines.extend(" ".join(f"{v:.7g}" for v in r[:11]) + f" {int(r[11])}" for r in rows)
    return "\n".join(lines) + "\n"


def _noise_body(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """A nearly static false detection (furniture): (T, 25, 12) rows."""
    rows = np.zeros((n_frames, 25, 12))
    rows[..., :3] = rng.uniform([-1.0, -0.5, 3.0], [1.0, 0.2, 4.0], 3) + rng.normal(0, 0.1, (25, 3))
    rows[..., :3] += rng.normal(0, 0.003, (n_frames, 25, 3))
    rows[..., 3:5] = DEPTH_F * rows[..., [0, 1]] / rows[..., 2:3] * [1, -1] + DEPTH_C
    rows[..., 11] = 1
    return rows


def write_performance(
    root: Path,
    subject: int,
    replication: int,
    action: str,
    n_frames: int,
    seed: int,
    noise_body: bool = False,
    missing: bool = False,
    size: tuple[int, int] = SIZE,
) -> list[str]:
    """Film one performance with the three cameras at ``size`` (W, H; real: 1920×1080); returns
    the sample names written."""
    a = NTU_ACTIONS[action]
    rng = np.random.default_rng([seed, _KEY, subject, replication, a])
    yaw = np.deg2rad((0.0 if replication == 1 else 45.0) + rng.uniform(-15, 15))
    world = place(perform(action, n_frames, FPS, rng), rng.uniform(-0.3, 0.3, 2), np.pi + yaw)
    dist, height = rng.uniform(2.8, 3.6), rng.uniform(0.8, 1.3)
    names = []
    for c, azimuth in CAMERA_AZIMUTH.items():
        az = np.deg2rad(azimuth + 180.0)
        eye = [dist * np.cos(az), dist * np.sin(az), height]
        camera = look_at(eye, [0, 0, 0.9], FOCAL * size[0] / SIZE[0], size)
        clip = film(world, camera, action, rng)
        name = sample_name(1, c, subject, replication, a)
        look = np.random.default_rng([seed, _KEY, subject, replication, a, c])  # own stream
        write_video(root / "nturgb+d_rgb" / f"{name}_rgb.avi", lab_look(clip.frames, look), FPS)
        bodies = []
        if not (missing and c == 1):
            bodies.append((BODY_ID + a, np.ones(n_frames, bool), kinect_joints(clip.cam, camera)))
        if noise_body:
            mask = np.zeros(n_frames, bool)
            mask[n_frames // 3 : 2 * n_frames // 3] = True
            bodies.append((BODY_ID + 999, mask, _noise_body(rng, n_frames)))
        path = root / "nturgb+d_skeletons" / f"{name}.skeleton"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(skeleton_text(bodies, n_frames))
        names.append(name)
    return names


def write_ntu(
    root: Path,
    subjects: tuple[int, ...],
    replications: tuple[int, ...],
    frames: tuple[int, int],
    seed: int,
    size: tuple[int, int] = SIZE,
) -> int:
    """Every action × subject × replication × 3 cameras; returns the number of samples."""
    root = Path(root)
    rng = np.random.default_rng([seed, _KEY])
    jobs = [(s, r, a) for s in subjects for r in replications for a in ACTIONS]
    lengths = rng.integers(frames[0], frames[1] + 1, len(jobs))
    missing: list[str] = []
    for i, ((s, r, a), n) in enumerate(zip(jobs, lengths)):
        is_missing = i == len(jobs) - 1
        names = write_performance(root, s, r, a, int(n), seed, i == 0, is_missing, size)
        missing += names[:1] if is_missing else []
    (root / MISSING_LIST).write_text("".join(f"{m}\n" for m in missing))
    return 3 * len(jobs)
