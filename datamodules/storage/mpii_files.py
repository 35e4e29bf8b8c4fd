"""MPII Human Pose as released: the annotation files (official .mat or the common JSON), the
validation list, head boxes, and the raw-files record source.

Layout on disk and the split: see ``datamodules.mpii``. Alphabet: N persons, J joints.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from datamodules.base import read_image, require_dir
from datamodules.storage.crops import read_for_crop
from datamodules.storage.records import Frames

log = logging.getLogger(__name__)

JSON_NAMES = ("mpii_annotations.json", "annot/mpii_annotations.json")
MAT_NAMES = (
    "mpii_human_pose_v1_u12_1.mat",
    "annot/mpii_human_pose_v1_u12_1.mat",
    "mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat",
)
VAL_LIST_NAMES = ("detections.mat", "annot/detections.mat")


@dataclass
class MPIIAnnotations:
    """Per-person arrays: image (N,) names, joints (N, 16, 2) 0-based px in MPII order, valid
    (N, 16), center (N, 2) objpos, scale (N,), head (N, 4) x1 y1 x2 y2 (NaN when unknown),
    is_val (N,), img_index / person_index (N,) 1-based ids of the official .mat."""

    image: np.ndarray
    joints: np.ndarray
    valid: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    head: np.ndarray
    is_val: np.ndarray
    img_index: np.ndarray
    person_index: np.ndarray

    def select(self, mask: np.ndarray) -> MPIIAnnotations:
        return MPIIAnnotations(**{k: v[mask] for k, v in vars(self).items()})

    def head_size(self) -> np.ndarray:
        """(N,) 0.6 × head-box diagonal, 0 where the box is unknown."""
        size = 0.6 * np.linalg.norm(self.head[:, 2:] - self.head[:, :2], axis=1)
        return np.nan_to_num(size, nan=0.0).astype(np.float32)


@dataclass(frozen=True)
class PersonCrops:
    """The official crop of each person: ``center`` (N, 2) and square ``window`` (N,) pixels."""

    center: np.ndarray
    window: np.ndarray


def person_crops(ann: MPIIAnnotations) -> PersonCrops:
    """s = 1.25·scale, centre = objpos + (0, 12·s) (y down), window 200·s (the official crop)."""
    s = 1.25 * np.asarray(ann.scale, np.float64)
    return PersonCrops(ann.center + np.stack([np.zeros_like(s), 12.0 * s], axis=1), 200.0 * s)


# --- JSON ----------------------------------------------------------------------------------------


def load_json(path: str | Path) -> MPIIAnnotations:
    """The common ``mpii_annotations.json``: missing joints are stored as [0, 0, 0]."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read MPII JSON {path}: {err}") from err
    try:
        raw = np.array([e["joint_self"] for e in entries], dtype=np.float64)  # (N, 16, 3)
        n = len(entries)
        return MPIIAnnotations(
            image=np.array([e["img_paths"] for e in entries]),
            joints=raw[..., :2] - 1.0,
            valid=np.any(raw[..., :2] != 0.0, axis=-1),
            center=np.array([e["objpos"] for e in entries], dtype=np.float64) - 1.0,
            scale=np.array([e["scale_provided"] for e in entries], dtype=np.float64),
            head=np.full((n, 4), np.nan),
            is_val=np.array([e["isValidation"] for e in entries], dtype=float) > 0.5,
            img_index=np.array([e["annolist_index"] for e in entries], dtype=np.int64),
            person_index=np.array([e["people_index"] for e in entries], dtype=np.int64),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"MPII JSON {path}: unexpected entry layout ({err!r})") from err


# --- official .mat (scipy.io.loadmat with squeeze_me=True, struct_as_record=False) --------------


def as_list(value: Any) -> list:
    """A MATLAB struct field as a list: one struct (squeezed) → [s], struct array → list, [] → []."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def number(value: Any, default: float = np.nan) -> float:
    """A MATLAB scalar that may be a number, a string ('1') or an empty array."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return default
        value = value.ravel()[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def parse_rect(rect: Any) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float, list]:
    """One ``annorect``: joints (16, 2) 1-based, valid (16,), objpos, scale, head box (4,)."""
    joints, valid = np.zeros((16, 2)), np.zeros(16, bool)
    annopoints = as_list(getattr(rect, "annopoints", None))
    for point in as_list(getattr(annopoints[0], "point", None)) if annopoints else []:
        j = int(number(point.id, -1))
        if 0 <= j < 16:
            joints[j], valid[j] = (number(point.x), number(point.y)), True
    objpos = as_list(getattr(rect, "objpos", None))
    center = (number(objpos[0].x), number(objpos[0].y)) if objpos else (np.nan, np.nan)
    head = [number(getattr(rect, k, np.nan)) for k in ("x1", "y1", "x2", "y2")]
    return joints, valid & np.isfinite(joints).all(-1), center, number(rect.scale), head


def parse_annolist(annolist: Any, names: list[str] | None = None) -> MPIIAnnotations:
    """Every annotated person (annopoints, objpos and scale present) of an ``annolist``."""
    rows = []
    for i, entry in enumerate(as_list(annolist)):
        for p, rect in enumerate(as_list(getattr(entry, "annorect", None))):
            if not hasattr(rect, "scale") or not hasattr(rect, "annopoints"):
                continue
            joints, valid, center, scale, head = parse_rect(rect)
            if valid.any() and np.isfinite(scale) and np.isfinite(center).all():
                rows.append((names[i] if names else "", joints, valid, center, scale, head, i, p))
    if not rows:
        raise ValueError("MPII annolist holds no annotated person")
    name, joints, valid, center, scale, head, img, person = zip(*rows)
    return MPIIAnnotations(
        image=np.array(name),
        joints=np.stack(joints) - 1.0,
        valid=np.stack(valid),
        center=np.array(center) - 1.0,
        scale=np.array(scale),
        head=np.array(head, dtype=np.float64),
        is_val=np.zeros(len(rows), bool),
        img_index=np.array(img, dtype=np.int64) + 1,
        person_index=np.array(person, dtype=np.int64) + 1,
    )


def load_mat(path: str | Path) -> scipy.io.matlab.mat_struct | dict:
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, TypeError, MatReadError) as err:
        raise ValueError(f"cannot read MATLAB file {path}: {err}") from err


def load_release(path: str | Path, val_list: str | Path) -> MPIIAnnotations:
    """The official ``mpii_human_pose_v1_u12_1.mat`` with the validation list ``val_list``."""
    mat = load_mat(path)
    if "RELEASE" not in mat:
        raise ValueError(f"{path}: no RELEASE struct (not the official MPII annotation file)")
    release = mat["RELEASE"]
    annolist = as_list(release.annolist)
    names = [str(getattr(getattr(e, "image", None), "name", "")) for e in annolist]
    ann = parse_annolist(annolist, names)
    train_img = np.asarray(release.img_train).ravel().astype(bool)
    ann = ann.select(train_img[ann.img_index - 1])
    ann.is_val = np.isin(pair_keys(ann.img_index, ann.person_index), val_pairs(val_list))
    return ann


def pair_keys(img_index: np.ndarray, person_index: np.ndarray) -> np.ndarray:
    return np.asarray(img_index, np.int64) * 1000 + np.asarray(person_index, np.int64)


def val_pairs(path: str | Path) -> np.ndarray:
    """(image, person) keys of the validation list file (``detections.mat``)."""
    mat = load_mat(path)
    if "RELEASE_img_index" not in mat:
        raise ValueError(f"{path}: no RELEASE_img_index (not the MPII validation list)")
    return pair_keys(mat["RELEASE_img_index"], mat["RELEASE_person_index"])


def head_boxes(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(image, person) keys (M,) and head boxes (M, 4) from the official .mat or detections.mat."""
    mat = load_mat(path)
    if "RELEASE" in mat:
        ann = parse_annolist(mat["RELEASE"].annolist)
        return pair_keys(ann.img_index, ann.person_index), ann.head
    ann = parse_annolist(mat["annolist"])
    # detections.mat lists one person per annolist entry, in the order of RELEASE_*_index.
    keys = pair_keys(mat["RELEASE_img_index"], mat["RELEASE_person_index"])
    return keys[ann.img_index - 1], ann.head


def find(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def find_annotation(root: Path, annotation: str | Path | None = None) -> Path:
    """``annotation`` or the first known annotation file under ``root``; error naming the tries."""
    path = Path(annotation) if annotation else find(root, JSON_NAMES + MAT_NAMES)
    if path is None or not path.is_file():
        tried = [str(path)] if path else [str(root / n) for n in JSON_NAMES + MAT_NAMES]
        raise FileNotFoundError(f"MPII annotation file not found; tried {tried}")
    return path


def load_annotations(root: Path, annotation: str | Path | None = None) -> MPIIAnnotations:
    """Parse the annotation file (JSON or official .mat) of ``root`` once, with head boxes."""
    path = find_annotation(root, annotation)
    lists = [path.parent / "detections.mat", *(root / n for n in VAL_LIST_NAMES)]
    val_list = next((p for p in lists if p.is_file()), None)
    if path.suffix == ".json":
        ann = load_json(path)
        box_source = next((p for p in [find(root, MAT_NAMES), val_list] if p is not None), None)
        if box_source is None:
            log.warning("MPII: no .mat beside %s, head boxes unknown: pck_ref = 0", path)
        else:
            keys, boxes = head_boxes(box_source)
            pos = {k: i for i, k in enumerate(keys)}
            idx = np.array([pos.get(k, -1) for k in pair_keys(ann.img_index, ann.person_index)])
            ann.head[idx >= 0] = boxes[idx[idx >= 0]]
        return ann
    if val_list is None:
        raise FileNotFoundError(
            f"MPII: the official .mat {path} needs the validation list detections.mat (MPII "
            f"evaluation kit) beside it or in {root} / {root / 'annot'}; or use mpii_annotations.json"
        )
    return load_release(path, val_list)


class MPIIFiles:
    """The annotated persons of one split (``val``) of ``root`` and their images (``images/``),
    decoded reduced where a crop ``window`` allows (``read_for_crop``) unless ``reduced_decode``
    is False (every image at full size)."""

    def __init__(
        self,
        root: str | Path,
        val: bool,
        annotation: str | Path | None = None,
        reduced_decode: bool = True,
    ):
        self.root = require_dir(root, "MPII root")
        self.images = require_dir(self.root / "images", "MPII images")
        ann = load_annotations(self.root, annotation)
        self.ann = ann.select(ann.is_val == val)
        self.reduced_decode = reduced_decode

    def __len__(self) -> int:
        return len(self.ann.image)

    def frames(self, i: int, window: float, size: int) -> Frames:
        """The image of person ``i`` to crop a ``window``-pixel square into ``size``²: decoded at
        1/f (f ∈ {1, 2, 4, 8}, the largest with window / f ≥ size) with ``stored`` its original →
        decoded matrix, or (``reduced_decode`` off) the full image with ``stored`` None."""
        path = self.images / str(self.ann.image[i])
        if not self.reduced_decode:
            return Frames(read_image(path))
        return Frames(*read_for_crop(path, window, size))
