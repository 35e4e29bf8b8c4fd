"""THE joint layouts: the single source of truth for joint names, merged layouts and flips.

Every dataset's joints are listed once, by name; index maps between layouts, flip permutations and
missing-joint masks are derived from the names (never pasted as index lists elsewhere).

Merged layouts of the official code: ``pa16j`` (MPII + Penn), ``pa17j`` (H36M + MPII), ``pa20j``
(MPII + H36M + NTU). Penn Action and NTU store "left" for the joint the official code maps onto the
merged *right* joint; ``Layout.swap_sides`` records that convention so that the official weights
stay valid (tested against SPEC.md's index lists).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _side_swapped(name: str) -> str:
    if name.startswith("l_"):
        return "r_" + name.removeprefix("l_")
    if name.startswith("r_"):
        return "l_" + name.removeprefix("r_")
    return name


def _centre_then_pairs(parts: tuple[str, ...]) -> tuple[str, ...]:
    """The merged order: pelvis, thorax, neck, head, then each part's right and left joint."""
    return ("pelvis", "thorax", "neck", "head") + tuple(f"{s}_{p}" for p in parts for s in "rl")


@dataclass(frozen=True)
class Layout:
    """A named joint order. ``swap_sides``: its l_/r_ labels map onto the merged r_/l_ joints."""

    name: str
    joints: tuple[str, ...]
    swap_sides: bool = False

    def __len__(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    @property
    def flip(self) -> np.ndarray:
        """(J,) permutation that swaps left and right joints (for horizontal flips)."""
        return np.array([self.joints.index(_side_swapped(j)) for j in self.joints])


def index_map(src: Layout, dst: Layout) -> np.ndarray:
    """(len(dst),) index into ``src`` for each joint of ``dst``; −1 where ``src`` lacks it."""
    names = [_side_swapped(j) if src.swap_sides else j for j in src.joints]
    return np.array([names.index(j) if j in names else -1 for j in dst.joints])


def convert(joints: np.ndarray, valid: np.ndarray, src: Layout, dst: Layout):
    """Re-index ``joints`` (..., len(src), C) and ``valid`` (..., len(src)) into ``dst``.

    Joints missing from ``src`` come out as zeros with ``valid`` False.
    """
    idx = index_map(src, dst)
    present = idx >= 0
    out = np.zeros(joints.shape[:-2] + (len(dst), joints.shape[-1]), dtype=joints.dtype)
    out_valid = np.zeros(valid.shape[:-1] + (len(dst),), dtype=bool)
    out[..., present, :] = joints[..., idx[present], :]
    out_valid[..., present] = valid[..., idx[present]]
    return out, out_valid


MPII = Layout(
    "mpii",
    (
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "neck",
        "head", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
)  # fmt: skip

PENN = Layout(
    "penn",
    (
        "head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip",
        "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
    ),
    swap_sides=True,
)  # fmt: skip

# Human3.6M's 32 joints (metadata.xml skeleton; "Site" end points named by their parent).
H36M32 = Layout(
    "h36m32",
    (
        "pelvis", "r_hip", "r_knee", "r_ankle", "r_foot", "r_toe_site", "l_hip", "l_knee",
        "l_ankle", "l_foot", "l_toe_site", "spine", "thorax", "neck", "head_center", "head",
        "l_clavicle", "l_shoulder", "l_elbow", "l_wrist", "l_thumb", "l_thumb_site", "l_hand",
        "l_hand_site", "r_clavicle", "r_shoulder", "r_elbow", "r_wrist", "r_thumb",
        "r_thumb_site", "r_hand", "r_hand_site",
    ),
)  # fmt: skip

# Kinect v2 order (0-based); NTU's "left" maps onto the merged right joints (official code).
NTU25 = Layout(
    "ntu25",
    (
        "pelvis", "spine", "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "l_hand",
        "r_shoulder", "r_elbow", "r_wrist", "r_hand", "l_hip", "l_knee", "l_ankle", "l_foot",
        "r_hip", "r_knee", "r_ankle", "r_foot", "thorax", "l_hand_tip", "l_thumb", "r_hand_tip",
        "r_thumb",
    ),
    swap_sides=True,
)  # fmt: skip

# The merged layouts of the official code, as the paired parts that follow the centre line.
PA16J = Layout("pa16j", _centre_then_pairs(("shoulder", "elbow", "wrist", "hip", "knee", "ankle")))
PA17J = Layout("pa17j", PA16J.joints + ("spine",))
PA20J = Layout(
    "pa20j",
    _centre_then_pairs(("shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "foot")),
)

LAYOUTS: dict[str, Layout] = {
    lay.name: lay for lay in (MPII, PENN, H36M32, NTU25, PA16J, PA17J, PA20J)
}

# Joints excluded from PCKh (official MPII evaluation).
PCKH_EXCLUDED = ("pelvis", "thorax")


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown joint layout {name!r}; known: {sorted(LAYOUTS)}") from None


# Drawn chains of joint names; a name absent from a layout is skipped (the chain closes over it).
CHAINS = (
    ("head", "neck", "thorax", "spine", "pelvis"),
    ("thorax", "r_shoulder", "r_elbow", "r_wrist", "r_hand"),
    ("thorax", "l_shoulder", "l_elbow", "l_wrist", "l_hand"),
    ("pelvis", "r_hip", "r_knee", "r_ankle", "r_foot"),
    ("pelvis", "l_hip", "l_knee", "l_ankle", "l_foot"),
)


def limbs(layout: Layout) -> list[tuple[int, int]]:
    """(a, b) index pairs of the drawn limbs of ``layout``, derived from its joint names."""
    pairs = []
    for chain in CHAINS:
        present = [layout.index(j) for j in chain if j in layout.joints]
        pairs += list(zip(present[:-1], present[1:]))
    for centre, a, b in (("thorax", "r_shoulder", "l_shoulder"), ("pelvis", "r_hip", "l_hip")):
        if centre not in layout.joints and {a, b} <= set(layout.joints):
            pairs.append((layout.index(a), layout.index(b)))
    return pairs
