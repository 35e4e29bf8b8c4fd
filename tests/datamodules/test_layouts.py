"""The joint layouts against the official index lists (SPEC.md, "Joint layouts"), and the maps
derived from names: flips are involutions, dataset → merged → dataset keeps the shared joints."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.layouts import (
    H36M32,
    LAYOUTS,
    MPII,
    NTU25,
    PA16J,
    PA17J,
    PA20J,
    PENN,
    convert,
    get_layout,
    index_map,
    limbs,
)

# The official code's index lists, as SPEC.md gives them.
OFFICIAL = {
    ("flip", "pa16j"): [0, 1, 2, 3, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14],
    ("flip", "pa20j"): [0, 1, 2, 3, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 17, 16, 19, 18],
    ("mpii", "pa16j"): [6, 7, 8, 9, 12, 13, 11, 14, 10, 15, 2, 3, 1, 4, 0, 5],
    ("ntu", "pa16j"): [0, 20, 2, 3, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18],
    ("h36m32", "pa17j"): [0, 12, 13, 15, 25, 17, 26, 18, 27, 19, 1, 6, 2, 7, 3, 8, 11],
    ("h36m32", "pa20j"): [0, 12, 13, 15, 25, 17, 26, 18, 27, 19, 30, 22, 1, 6, 2, 7, 3, 8, 4, 9],
    ("ntu", "pa20j"): [0, 20, 2, 3, 4, 8, 5, 9, 6, 10, 7, 11, 12, 16, 13, 17, 14, 18, 15, 19],
}
SOURCES = {"mpii": MPII, "ntu": NTU25, "h36m32": H36M32}

# The merged layouts' joint names as they were written out name by name before being derived.
MERGED_NAMES = {
    PA16J: "pelvis thorax neck head r_shoulder l_shoulder r_elbow l_elbow r_wrist l_wrist r_hip"
    " l_hip r_knee l_knee r_ankle l_ankle",
    PA17J: "pelvis thorax neck head r_shoulder l_shoulder r_elbow l_elbow r_wrist l_wrist r_hip"
    " l_hip r_knee l_knee r_ankle l_ankle spine",
    PA20J: "pelvis thorax neck head r_shoulder l_shoulder r_elbow l_elbow r_wrist l_wrist r_hand"
    " l_hand r_hip l_hip r_knee l_knee r_ankle l_ankle r_foot l_foot",
}


@pytest.mark.parametrize("merged", list(MERGED_NAMES), ids=lambda lay: lay.name)
def test_merged_layouts_derived_from_parts_keep_their_written_names(merged):
    assert merged.joints == tuple(MERGED_NAMES[merged].split())
    assert not merged.swap_sides


@pytest.mark.parametrize("merged", [PA16J, PA20J])
def test_flip_is_the_official_permutation(merged):
    assert merged.flip.tolist() == OFFICIAL[("flip", merged.name)]


def test_pa17j_is_pa16j_plus_a_spine_that_flips_to_itself():
    assert PA17J.joints[:16] == PA16J.joints and PA17J.joints[16] == "spine"
    assert PA17J.flip[16] == 16 and PA17J.flip[:16].tolist() == OFFICIAL[("flip", "pa16j")]


@pytest.mark.parametrize(("src", "dst"), [k for k in OFFICIAL if k[0] != "flip"])
def test_index_maps_equal_the_official_lists(src, dst):
    assert index_map(SOURCES[src], get_layout(dst)).tolist() == OFFICIAL[(src, dst)]


def test_penn_fills_head_to_ankles_of_pa16j_in_penn_order():
    idx = index_map(PENN, PA16J)
    assert idx[:3].tolist() == [-1, -1, -1]  # pelvis, thorax, neck: not annotated
    assert idx[3:].tolist() == list(range(13))


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_twice_is_identity(layout):
    flip = layout.flip
    assert sorted(flip.tolist()) == list(range(len(layout)))
    assert flip[flip].tolist() == list(range(len(layout)))


@pytest.mark.parametrize("src", [MPII, H36M32], ids=lambda lay: lay.name)  # no swap_sides
@pytest.mark.parametrize("merged", [PA16J, PA17J, PA20J], ids=lambda lay: lay.name)
def test_dataset_to_merged_and_back_keeps_shared_joints(src, merged):
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(3, len(src), 2))
    valid = np.ones((3, len(src)), bool)
    there, there_valid = convert(joints, valid, src, merged)
    back, back_valid = convert(there, there_valid, merged, src)
    shared = index_map(merged, src) >= 0
    assert shared.sum() == there_valid[0].sum() > 0
    np.testing.assert_array_equal(back[:, shared], joints[:, shared])
    assert back_valid[:, shared].all() and not back_valid[:, ~shared].any()


def test_limbs_come_from_joint_names():
    pairs = limbs(PA16J)
    named = {(PA16J.joints[a], PA16J.joints[b]) for a, b in pairs}
    assert ("r_elbow", "r_wrist") in named and ("thorax", "l_shoulder") in named
    assert ("head", "neck") in named and len(pairs) == 15  # a tree over 16 joints
    assert ("r_wrist", "r_hand") in {(PA20J.joints[a], PA20J.joints[b]) for a, b in limbs(PA20J)}
    penn = {(PENN.joints[a], PENN.joints[b]) for a, b in limbs(PENN)}
    assert ("r_shoulder", "l_shoulder") in penn  # no thorax: shoulders joined directly
