"""The synthetic 3D body: joint names, bone lengths, forward kinematics, layout conversion.

The body's joints are the union of the names in ``datamodules.layouts`` (H36M32 + NTU hand tips), so
every dataset layout is a re-indexing of one (T, J, 3) array. Body-local frame: metres, x = the
person's anatomical left, y = up, z = forward (right-handed), pelvis at the origin.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from datamodules.layouts import H36M32, NTU25, Layout, index_map

JOINTS: tuple[str, ...] = H36M32.joints + tuple(j for j in NTU25.joints if j not in H36M32.joints)
BODY = Layout("synthetic_body", JOINTS)

# Segment lengths (metres) of a 1.76 m person; scaled per sample.
LENGTHS = {
    "pelvis_spine": 0.22, "spine_thorax": 0.25, "thorax_neck": 0.10, "neck_head_center": 0.12,
    "head_center_head": 0.11, "shoulder_half": 0.18, "hip_half": 0.11, "hip_drop": 0.05,
    "upper_arm": 0.29, "forearm": 0.26, "thigh": 0.45, "shin": 0.44, "ankle_height": 0.07,
}  # fmt: skip

# Drawn segments: (joint a, joint b, width in metres). Side-prefixed segments take the side colour.
BONES: tuple[tuple[str, str, float], ...] = (
    ("pelvis", "spine", 0.20), ("spine", "thorax", 0.24), ("thorax", "neck", 0.08),
    ("l_shoulder", "l_elbow", 0.10), ("l_elbow", "l_wrist", 0.08), ("l_wrist", "l_hand_tip", 0.06),
    ("r_shoulder", "r_elbow", 0.10), ("r_elbow", "r_wrist", 0.08), ("r_wrist", "r_hand_tip", 0.06),
    ("l_hip", "l_knee", 0.13), ("l_knee", "l_ankle", 0.10), ("l_ankle", "l_toe_site", 0.07),
    ("r_hip", "r_knee", 0.13), ("r_knee", "r_ankle", 0.10), ("r_ankle", "r_toe_site", 0.07),
    ("l_shoulder", "r_shoulder", 0.10), ("l_hip", "r_hip", 0.12),
)  # fmt: skip
HEAD_RADIUS = 0.115


def joint_index(name: str) -> int:
    return JOINTS.index(name)


def layout_index(layout: Layout) -> np.ndarray:
    """(len(layout),) body joint index of each joint of ``layout``.

    Honours ``layout.swap_sides``: a layout whose "l_" label means the merged right joint reads the
    body's anatomical right joint there, as the real data does.
    """
    idx = index_map(replace(BODY, swap_sides=layout.swap_sides), layout)
    if (idx < 0).any():
        raise ValueError(f"body lacks joints of layout {layout.name!r}")
    return idx


def to_layout(joints: np.ndarray, layout: Layout) -> np.ndarray:
    """Body joints (..., J_body, C) → (..., len(layout), C) in ``layout`` order."""
    return joints[..., layout_index(layout), :]


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angle`` (T,) radians about body axis 0 (x), 1 (y) or 2 (z)."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.zeros(angle.shape + (3, 3))
    R[..., axis, axis] = 1.0
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    return R


def _apply(R: np.ndarray, v) -> np.ndarray:
    """(T, 3, 3) @ (3,) → (T, 3)."""
    return np.einsum("tij,j->ti", R, np.asarray(v, dtype=float))


def _limb_chain(R_base, root, angles, side, sign, upper, lower, names, lengths):
    """Positions of a 2-segment limb hanging down at 0: flexion swings it forward, the elbow bends
    the forearm forward, the knee the shin backward."""
    abd, flex, bend = angles
    R1 = R_base @ _rot(2, sign * abd) @ _rot(0, -flex)
    R2 = R1 @ _rot(0, bend if upper == "thigh" else -bend)
    j1 = root + _apply(R1, [0.0, -lengths[upper], 0.0])
    j2 = j1 + _apply(R2, [0.0, -lengths[lower], 0.0])
    return {f"{side}_{names[0]}": j1, f"{side}_{names[1]}": j2}, R2


def forward_kinematics(angles: dict[str, np.ndarray], lengths: dict[str, float]) -> np.ndarray:
    """Joint angles (each (T,) radians) → body-local joints (T, J, 3), pelvis at the origin.

    Angles: torso_pitch (forward bend), torso_roll, torso_yaw, head_pitch (nod), and per side s in
    {l, r}: s_sh_abd, s_sh_flex, s_elbow, s_hip_abd, s_hip_flex, s_knee.
    """
    T = len(angles["torso_pitch"])
    L = lengths
    zero = np.zeros((T, 3))
    R_torso = _rot(1, angles["torso_yaw"]) @ _rot(0, angles["torso_pitch"])
    R_torso = R_torso @ _rot(2, angles["torso_roll"])
    P = {"pelvis": zero}
    P["spine"] = _apply(R_torso, [0, L["pelvis_spine"], 0])
    P["thorax"] = P["spine"] + _apply(R_torso, [0, L["spine_thorax"], 0])
    P["neck"] = P["thorax"] + _apply(R_torso, [0, L["thorax_neck"], 0])
    head_dir = _apply(R_torso @ _rot(0, angles["head_pitch"]), [0, 1.0, 0])
    P["head_center"] = P["neck"] + L["neck_head_center"] * head_dir
    P["head"] = P["head_center"] + L["head_center_head"] * head_dir
    R_pelvis = np.broadcast_to(np.eye(3), (T, 3, 3))
    for side, sign in (("l", 1.0), ("r", -1.0)):
        P[f"{side}_shoulder"] = P["thorax"] + _apply(R_torso, [sign * L["shoulder_half"], -0.02, 0])
        P[f"{side}_clavicle"] = 0.5 * (P["thorax"] + P[f"{side}_shoulder"])
        arm = [angles[f"{side}_{a}"] for a in ("sh_abd", "sh_flex", "elbow")]
        names = ("elbow", "wrist")
        joints, R_fore = _limb_chain(
            R_torso, P[f"{side}_shoulder"], arm, side, sign, "upper_arm", "forearm", names, L
        )
        P.update(joints)
        _hand(P, side, R_fore, sign)
        P[f"{side}_hip"] = np.broadcast_to([sign * L["hip_half"], -L["hip_drop"], 0], (T, 3))
        leg = [angles[f"{side}_{a}"] for a in ("hip_abd", "hip_flex", "knee")]
        joints, _ = _limb_chain(
            R_pelvis, P[f"{side}_hip"], leg, side, sign, "thigh", "shin", ("knee", "ankle"), L
        )
        P.update(joints)
        P[f"{side}_foot"] = P[f"{side}_ankle"] + [0, -0.05, 0.13]
        P[f"{side}_toe_site"] = P[f"{side}_ankle"] + [0, -0.06, 0.19]
    return np.stack([P[name] for name in JOINTS], axis=1)


def _hand(P: dict, side: str, R_fore: np.ndarray, sign: float) -> None:
    """Hand points along the forearm (down its local −y), thumb towards its local +z."""
    w = P[f"{side}_wrist"]
    along, thumb = _apply(R_fore, [0, -1.0, 0]), _apply(R_fore, [0, 0, 1.0])
    P[f"{side}_hand"] = w + 0.08 * along
    P[f"{side}_hand_tip"] = w + 0.17 * along
    P[f"{side}_hand_site"] = w + 0.19 * along
    P[f"{side}_thumb"] = w + 0.04 * along + 0.04 * thumb
    P[f"{side}_thumb_site"] = w + 0.07 * along + 0.06 * thumb


def body_lengths(rng: np.random.Generator, scale: float) -> dict[str, float]:
    """Segment lengths of one person: overall ``scale`` times a ±5% jitter per segment."""
    jitter = rng.uniform(0.95, 1.05, len(LENGTHS))
    return {k: v * scale * j for (k, v), j in zip(LENGTHS.items(), jitter)}


def standing_height(lengths: dict[str, float]) -> float:
    """Height of the pelvis above the ground (metres) with straight legs."""
    return lengths["hip_drop"] + lengths["thigh"] + lengths["shin"] + lengths["ankle_height"]
