"""MPII writer: ``images/*.jpg``, the common JSON ``mpii_annotations.json``, the official
``mpii_human_pose_v1_u12_1.mat`` (``RELEASE``) and a ``detections.mat`` of the validation people.

Coordinates are 1-based in both annotation files, as in the real ones. Joints outside the image
are unannotated (JSON [0, 0, 0]; no ``point`` in the .mat). Like the real .mat, integer values load
as uint8/uint16, upper neck and head top (ids 8, 9) are floats with an empty ``is_visible``, some
``is_visible`` are strings, and test images (``img_train`` 0) have only ``objpos`` and ``scale``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io

from datamodules.layouts import MPII
from datamodules.prepare.store import write_jpeg
from datamodules.synthetic.camera import framing_camera, in_image
from datamodules.synthetic.motion import ACTIONS, perform, place
from datamodules.synthetic.render import film
from datamodules.synthetic.skeleton import joint_index, to_layout

SIZES = ((320, 240), (240, 320), (288, 288))
EMPTY = {"_ArrayType_": "double", "_ArraySize_": [0, 0], "_ArrayData_": None}  # jsonlab []
HEAD_BOX_M = 0.26  # side of the square head box, metres at the head's depth
_FLOAT_IDS = (8, 9)
_KEY = 1
_CHAIN = ("head", "neck", "thorax", "spine", "pelvis", "l_hip", "l_knee", "l_ankle")


def _num(v: float) -> np.ndarray:
    """A (1, 1) MATLAB number: integers as the smallest unsigned type, like the real file."""
    if float(v).is_integer() and 0 <= v < 65536:
        return np.array([[int(v)]], dtype=np.uint8 if v < 256 else np.uint16)
    return np.array([[float(v)]])


def _struct(shape: tuple[int, ...], **fields) -> np.ndarray:
    s = np.empty(shape, dtype=[(k, "O") for k in fields])
    for k, v in fields.items():
        s[k].flat[0] = v
    return s


def person(index: int, seed: int, sizes: tuple = SIZES) -> tuple[np.ndarray, dict]:
    """Render image ``index`` at one of ``sizes`` (W, H); returns the RGB image and its person
    annotation (1-based px)."""
    rng = np.random.default_rng([seed, _KEY, index])
    size = tuple(sizes[rng.integers(len(sizes))])
    action = ACTIONS[rng.integers(len(ACTIONS))]
    world = place(perform(action, 1, 30.0, rng), np.zeros(2), rng.uniform(-np.pi, np.pi))
    camera = framing_camera(rng, np.array([0, 0, 1.0]), rng.uniform(0.45, 0.9) * min(size), size)
    clip = film(world, camera, action, rng)
    uv, cam = clip.uv[0], clip.cam[0]
    joints = to_layout(uv, MPII) + 1.0
    clicked = ~np.isin(np.arange(len(MPII)), _FLOAT_IDS)
    joints = np.where(clicked[:, None], np.round(joints), np.round(joints, 3))
    depth = cam[joint_index("pelvis"), 2]
    height = np.linalg.norm(np.diff(world[0, [joint_index(j) for j in _CHAIN]], axis=0), axis=1)
    head = (uv[joint_index("neck")] + uv[joint_index("head")]) / 2 + 1.0
    half = camera.f[0] * HEAD_BOX_M / cam[joint_index("head_center"), 2] / 2
    annot = {
        "size": size,
        "action": action,
        "joints": joints,
        "annotated": in_image(joints - 1.0, size),
        "objpos": np.round((uv.min(0) + uv.max(0)) / 2 + 1.0),
        "scale": float(camera.f[0] * (height.sum() + 0.07) / depth / 200.0),
        "head_box": np.round(np.concatenate([head - half, head + half])),
    }
    return clip.frames[0], annot


def json_entry(name: str, annot: dict, index: int, validation: bool) -> dict:
    joints = np.where(annot["annotated"][:, None], annot["joints"], 0.0)
    vis = annot["annotated"].astype(float)[:, None]
    return {
        "dataset": "MPI",
        "isValidation": float(validation),
        "img_paths": name,
        "img_width": float(annot["size"][0]),
        "img_height": float(annot["size"][1]),
        "objpos": [float(v) for v in annot["objpos"]],
        "joint_self": np.round(np.concatenate([joints, vis], 1), 3).tolist(),
        "scale_provided": round(annot["scale"], 3),
        "joint_others": EMPTY,
        "scale_provided_other": EMPTY,
        "objpos_other": EMPTY,
        "annolist_index": float(index),
        "people_index": 1.0,
        "numOtherPeople": 0.0,
    }


def annorect(annot: dict, index: int, test: bool) -> np.ndarray:
    """(1, 1) MATLAB struct of one person (test images: objpos and scale only)."""
    objpos = _struct((1, 1), x=_num(annot["objpos"][0]), y=_num(annot["objpos"][1]))
    if test:
        return _struct((1, 1), scale=_num(annot["scale"]), objpos=objpos)
    ids = np.flatnonzero(annot["annotated"])
    points = np.empty((1, len(ids)), dtype=[(k, "O") for k in ("x", "y", "id", "is_visible")])
    for n, j in enumerate(ids):
        x, y = annot["joints"][j]
        vis = np.zeros((0, 0), np.uint8) if j in _FLOAT_IDS else "1" if index % 7 == 0 else _num(1)
        points[0, n] = (_num(x), _num(y), _num(j), vis)
    box = [_num(v) for v in annot["head_box"]]
    return _struct(
        (1, 1),
        x1=box[0],
        y1=box[1],
        x2=box[2],
        y2=box[3],
        annopoints=_struct((1, 1), point=points),
        scale=_num(annot["scale"]),
        objpos=objpos,
    )


def write_release(path: Path, names: list[str], annots: list[dict], test: list[bool]) -> None:
    """The official ``RELEASE`` struct (annolist, img_train, version, single_person, act, ...)."""
    N = len(names)
    fields = ("image", "annorect", "frame_sec", "vididx")
    annolist = np.empty((1, N), dtype=[(k, "O") for k in fields])
    act = np.empty((N, 1), dtype=[(k, "O") for k in ("cat_name", "act_name", "act_id")])
    single = np.empty((N, 1), dtype=object)
    for i, (name, a, t) in enumerate(zip(names, annots, test)):
        annolist[0, i] = (
            _struct((1, 1), name=name),
            annorect(a, i + 1, t),
            np.zeros((0, 0)),
            np.zeros((0, 0)),
        )
        act[i, 0] = ("synthetic", a["action"], _num(ACTIONS.index(a["action"]) + 1))
        single[i, 0] = np.zeros((0, 0)) if t else _num(1)
    release = _struct(
        (1, 1),
        annolist=annolist,
        img_train=np.array([[0 if t else 1 for t in test]], dtype=np.uint8),
        version="12",
        single_person=single,
        act=act,
        video_list=np.array([["synthetic"]], dtype=object),
    )
    scipy.io.savemat(path, {"RELEASE": release})


def write_detections(path: Path, annots: list[dict], image_index: list[int]) -> None:
    """``detections.mat`` of the validation people, ground truth as the detections."""
    order = (
        "rank",
        "rkne",
        "rhip",
        "lhip",
        "lkne",
        "lank",
        "neck",
        "head",
        "rwri",
        "relb",
        "rsho",
        "lsho",
        "lelb",
        "lwri",
    )
    mpii_ids = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15]
    annolist = np.empty((1, len(annots)), dtype=[("annorect", "O")])
    keypoints = np.empty((1, len(annots)), dtype=object)
    for n, (a, i) in enumerate(zip(annots, image_index)):
        annolist[0, n] = (annorect(a, i, False),)
        keypoints[0, n] = a["joints"][mpii_ids]
    output_joints = np.empty((1, len(order)), dtype=object)
    output_joints[0, :] = order
    scipy.io.savemat(
        path,
        {
            "type": "valid",
            "output_joints": output_joints,
            "annolist": annolist,
            "keypointsAll": keypoints,
            "RELEASE_img_index": np.array([image_index], dtype=np.uint16),
            "RELEASE_person_index": np.ones((1, len(annots)), dtype=np.uint8),
        },
    )


def write_mpii(
    root: Path, n_train: int, n_val: int, n_test: int, seed: int, sizes: tuple = SIZES
) -> int:
    """Images 1…n_train (train), then n_val (validation), then n_test (test, no joints), each of
    one of ``sizes`` (W, H; real: 1280×720)."""
    root = Path(root)
    names, annots, entries, test = [], [], [], []
    for i in range(1, n_train + n_val + n_test + 1):
        image, annot = person(i, seed, sizes)
        name = f"{i:09d}.jpg"
        write_jpeg(root / "images" / name, image)
        names.append(name)
        annots.append(annot)
        test.append(i > n_train + n_val)
        if not test[-1]:
            entries.append(json_entry(name, annot, i, i > n_train))
    (root / "mpii_annotations.json").write_text(json.dumps(entries))
    write_release(root / "mpii_human_pose_v1_u12_1.mat", names, annots, test)
    val = list(range(n_train + 1, n_train + n_val + 1))
    write_detections(root / "detections.mat", [annots[i - 1] for i in val], val)
    return len(names)
