"""Actions as joint-angle trajectories over time, with per-performance random variation.

Each action is a function of the phase φ (T,) and an amplitude factor giving joint angles in degrees
(see ``skeleton.forward_kinematics``) and a jump height. ``drink`` and ``phone`` share one motion:
only the object held in the right hand (a white cup, a black phone) tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from datamodules.synthetic.skeleton import body_lengths, forward_kinematics, joint_index

ACTIONS: tuple[str, ...] = (
    "wave",
    "squat",
    "jumping_jacks",
    "kick",
    "bow",
    "punch",
    "drink",
    "phone",
)
# RGB colour of the object held in the right hand (actions without an object are absent): a white
# cup and a black phone, achromatic so that no clothing hue (any hue occurs) can mimic them.
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {"drink": (245, 245, 235), "phone": (22, 22, 26)}
SIDE_ANGLES = ("sh_abd", "sh_flex", "elbow", "hip_abd", "hip_flex", "knee")
ANGLES = ("torso_pitch", "torso_roll", "torso_yaw", "head_pitch") + tuple(
    f"{s}_{a}" for s in "lr" for a in SIDE_ANGLES
)
# Cycles per second of each action (times the performance's speed).
FREQUENCY = {
    "wave": 2.0,
    "squat": 0.8,
    "jumping_jacks": 1.2,
    "kick": 1.0,
    "bow": 0.7,
    "punch": 1.2,
    "drink": 0.6,
    "phone": 0.6,
}


@dataclass(frozen=True)
class Variation:
    """Per-performance randomness: tempo, range of motion, start phase, body size."""

    speed: float
    amplitude: float
    phase: float
    scale: float


def sample_variation(rng: np.random.Generator) -> Variation:
    return Variation(
        speed=rng.uniform(0.75, 1.3),
        amplitude=rng.uniform(0.8, 1.15),
        phase=rng.uniform(0, 2 * np.pi),
        scale=rng.uniform(0.85, 1.15),
    )


def _rise(phi: np.ndarray) -> np.ndarray:
    """0 → 1 → 0 once per cycle."""
    return 0.5 * (1 - np.cos(phi))


def _wave(phi, a):
    return {"r_sh_abd": 140 + 22 * a * np.sin(phi), "r_elbow": 30 + 0 * phi}


def _squat(phi, a):
    d = _rise(phi) * a
    both = {f"{s}_{k}": v for s in "lr" for k, v in (("hip_flex", 95 * d), ("knee", 115 * d))}
    arms = {f"{s}_sh_flex": 80 * d for s in "lr"}
    return both | arms | {"torso_pitch": 30 * d}


def _jumping_jacks(phi, a):
    d = _rise(phi)
    arms = {f"{s}_sh_abd": 15 + 150 * a * d for s in "lr"}
    legs = {f"{s}_hip_abd": 3 + 18 * a * d for s in "lr"}
    return arms | legs | {"lift": 0.1 * a * np.abs(np.sin(phi))}


def _kick(phi, a):
    k = np.maximum(0, np.sin(phi)) ** 2
    guard = {f"{s}_{j}": v + 0 * phi for s in "lr" for j, v in (("sh_flex", 35), ("elbow", 70))}
    return guard | {"r_hip_flex": 85 * a * k, "r_knee": 140 * k * (1 - k), "torso_pitch": -10 * k}


def _bow(phi, a):
    d = _rise(phi) * a
    arms = {f"{s}_sh_flex": 60 * d for s in "lr"}
    return arms | {"torso_pitch": 65 * d, "head_pitch": 15 * d}


def _punch(phi, a):
    out = {"torso_yaw": 15 * a * (np.maximum(0, np.sin(phi)) - np.maximum(0, -np.sin(phi)))}
    for s, sign in (("r", 1), ("l", -1)):
        p = np.maximum(0, sign * np.sin(phi)) ** 3 * a
        out |= {
            f"{s}_sh_flex": 50 + 40 * p,
            f"{s}_elbow": 120 - 115 * p,
            f"{s}_sh_abd": 15 - 10 * p,
        }
    return out


def _hand_to_head(phi, a):
    d = np.clip(1.6 * _rise(phi), 0, 1) * a
    return {"r_sh_flex": 75 * d, "r_sh_abd": 10 - 30 * d, "r_elbow": 125 * d, "head_pitch": -10 * d}


MOTIONS: dict[str, Callable] = {
    "wave": _wave,
    "squat": _squat,
    "jumping_jacks": _jumping_jacks,
    "kick": _kick,
    "bow": _bow,
    "punch": _punch,
    "drink": _hand_to_head,
    "phone": _hand_to_head,
}


def _rest_angles(T: int) -> dict[str, np.ndarray]:
    rest = {name: np.zeros(T) for name in ANGLES}
    for s in "lr":
        rest[f"{s}_sh_abd"] += 8
        rest[f"{s}_elbow"] += 12
    return rest


def _sway(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """(len(ANGLES), T) small idle motion in degrees."""
    amp = rng.uniform(0, 4, (len(ANGLES), 1))
    freq = rng.uniform(0.2, 0.8, (len(ANGLES), 1))
    phase = rng.uniform(0, 2 * np.pi, (len(ANGLES), 1))
    return amp * np.sin(2 * np.pi * freq * t + phase)


def perform(action: str, n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Body-local joints (T, J, 3) in metres of one performance, feet on the ground (y = 0)."""
    if action not in MOTIONS:
        raise KeyError(f"unknown synthetic action {action!r}; known: {ACTIONS}")
    var = sample_variation(rng)
    t = np.arange(n_frames) / fps
    phi = 2 * np.pi * FREQUENCY[action] * var.speed * t + var.phase
    angles = _rest_angles(n_frames)
    for name, sway in zip(ANGLES, _sway(rng, t)):
        angles[name] = angles[name] + sway
    motion = MOTIONS[action](phi, var.amplitude)
    lift = motion.pop("lift", np.zeros(n_frames))
    for name, value in motion.items():
        angles[name] = angles[name] + value
    lengths = body_lengths(rng, var.scale)
    joints = forward_kinematics({k: np.deg2rad(v) for k, v in angles.items()}, lengths)
    return _ground(joints, lengths["ankle_height"], lift)


def _ground(joints: np.ndarray, ankle_height: float, lift: np.ndarray) -> np.ndarray:
    """Translate each frame so the lower ankle stands still at ``ankle_height``, then add ``lift``."""
    ankles = joints[:, [joint_index("l_ankle"), joint_index("r_ankle")]]
    support = ankles[np.arange(len(joints)), ankles[..., 1].argmin(axis=1)]
    shift = np.stack(
        [np.zeros(len(joints)), ankle_height - support[:, 1] + lift, -support[:, 2]], 1
    )
    return joints + shift[:, None, :]


def place(local: np.ndarray, position: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Body-local joints (T, J, 3) → world (T, J, 3), z up, at ground ``position`` (T, 2) or (2,)
    facing ``yaw`` (T,) or () radians (yaw 0 faces world +x)."""
    yaw = np.broadcast_to(yaw, local.shape[:1])
    left = np.stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)], -1)
    forward = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], -1)
    up = np.broadcast_to([0.0, 0.0, 1.0], forward.shape)
    basis = np.stack([left, up, forward], 1)  # (T, 3 local axes, 3 world)
    origin = np.zeros(local.shape[:1] + (3,))
    origin[:, :2] = position
    return np.einsum("tjk,tkw->tjw", local, basis) + origin[:, None, :]
