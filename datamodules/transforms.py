"""Crop geometry, augmentation and pose targets shared by every dataset reader.

Alphabet: T frames, J joints, S crop side (``input_size``), H×W original image.

Pixel convention: integer coordinates are pixel centres, 0-based, in the original image and in the
crop alike (the convention of ``cv2.warpAffine``), so a joint at original pixel p lands at crop pixel
``A @ (p, 1)`` exactly. The sample's ``crop`` entry is ``A / S``: original pixels → crop-normalised
[0, 1] coordinates (the network's target is crop pixel / S, as in the official code).

Augmentation is one affine matrix per sample (or per clip), composed from parameters sampled once:

    A = out · flip · rotate · scale · (p − centre),   out: + S/2 + translation

and applied with one ``cv2.warpAffine`` (bilinear) to every frame and with ``A`` to the joints.
The geometry stays this one affine: albumentations (2.x) could do it too — ``Affine`` keeps
out-of-image keypoints with ``KeypointParams(remove_invisible=False)`` and ``Compose(...,
save_applied_params=True)`` reports what was applied — but the box crop and the augmentation would
be two transforms (two resamplings), and the exact matrix evaluation inverts is simplest built
from our own parameters. The photometric "chpower" (per-channel gamma 0.9–1.1, official) is
applied with the normalisation, on the device after the transfer: samples ship the uint8 crop and
their ``chpower`` (``deephar.images``; ``RandomGamma`` would draw one gamma for all channels).

Photometric augmentation of RGB training crops (``Photometric``: colour jitter, blur, noise) is
albumentations' ``A.Compose``, configurable per source (``aug: {photometric: {...}}``), off unless
configured and never applied at evaluation; one draw per sample, the same for every frame of a clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np
import torch

# the one crop mapping (pixels ↔ [0, 1]) lives beside the network; the readers use it from here
from deephar.crop import apply_affine, invert_affine, to_crop, to_pixels  # noqa: F401
from deephar.images import image_to_float

REFERENCE_CROP = 256  # the official input size, in whose pixels translations are given


@dataclass(frozen=True)
class Photometric:
    """Photometric ranges (0 = off): colour jitter factors 1 ± ``brightness`` / ``contrast`` /
    ``saturation`` and hue shift ± ``hue`` (fraction of the circle); Gaussian blur (3–5 px) with
    probability ``blur``; Gaussian noise of std up to ``noise`` (fraction of the 0–255 range)."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    blur: float = 0.0
    noise: float = 0.0

    @property
    def active(self) -> bool:
        return any(v > 0 for v in vars(self).values())


@lru_cache(maxsize=8)
def photometric_pipeline(ranges: Photometric):
    """The ``A.Compose`` of ``ranges`` (built once per process and ranges)."""
    import albumentations as A

    steps = []
    if ranges.brightness or ranges.contrast or ranges.saturation or ranges.hue:
        steps.append(
            A.ColorJitter(
                brightness=(1 - ranges.brightness, 1 + ranges.brightness),
                contrast=(1 - ranges.contrast, 1 + ranges.contrast),
                saturation=(1 - ranges.saturation, 1 + ranges.saturation),
                hue=(-ranges.hue, ranges.hue),
                p=1.0,
            )
        )
    if ranges.blur:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), p=ranges.blur))
    if ranges.noise:
        steps.append(A.GaussNoise(std_range=(0.0, ranges.noise), p=1.0))
    return A.Compose(steps)


def apply_photometric(frames: np.ndarray, ranges: Photometric, seed: int) -> np.ndarray:
    """uint8 ([T,] S, S, 3) → the same with one photometric draw (``seed``) for every frame."""
    pipeline = photometric_pipeline(ranges)
    pipeline.set_random_seed(seed)
    if frames.ndim == 3:
        return pipeline(image=frames)["image"]
    return np.asarray(pipeline(images=frames)["images"])


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the geometric + photometric augmentation (identity by default).

    angle: degrees, counter-clockwise on screen; scale: window multiplier (>1 zooms out);
    flip: horizontal mirror (joints swapped through the layout's ``flip``); shift: (tx, ty) in pixels
    of a 256-pixel crop (the official input; scaled to the actual crop size, so a range means the
    same fraction of the crop at any ``input_size``); chpower: per-channel gamma (R, G, B).
    """

    angle: float = 0.0
    scale: float = 1.0
    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)
    chpower: tuple[float, float, float] = (1.0, 1.0, 1.0)
    photometric: Photometric | None = None  # with the seed of its draw:
    photo_seed: int = 0


@dataclass(frozen=True)
class AugmentRanges:
    """Training ranges (official values in SPEC: MPII angle 40, scales (0.7, 1, 1.3); H36M 10,
    (0.8, 1, 1.2); Penn 30, (0.7, 1, 1.3), translate 40). ``translate`` is in pixels of a
    256-pixel crop (``REFERENCE_CROP``), whatever the configured input size."""

    angle: float = 0.0
    scales: tuple[float, ...] = (1.0,)
    flip: bool = True
    translate: float = 0.0
    chpower: tuple[float, float] | None = (0.9, 1.1)
    photometric: Photometric | dict | None = None  # RGB colour / blur / noise (albumentations)

    def __post_init__(self) -> None:
        if isinstance(self.photometric, dict):
            object.__setattr__(self, "photometric", Photometric(**self.photometric))

    def sample(self, rng: np.random.Generator) -> AugmentParams:
        lo, hi = self.chpower or (1.0, 1.0)
        photo = self.photometric if self.photometric and self.photometric.active else None
        params = AugmentParams(
            angle=float(rng.uniform(-self.angle, self.angle)),
            scale=float(rng.choice(np.asarray(self.scales, dtype=float))),
            flip=bool(self.flip and rng.random() < 0.5),
            shift=tuple(float(v) for v in rng.uniform(-self.translate, self.translate, 2)),
            chpower=tuple(float(v) for v in rng.uniform(lo, hi, 3)),
        )
        if photo is None:  # no extra draw: the rng stream is unchanged without photometric
            return params
        return replace(params, photometric=photo, photo_seed=int(rng.integers(2**31)))


def augment_ranges(aug: AugmentRanges | dict | None, default: AugmentRanges) -> AugmentRanges:
    """A reader's training ranges: ``aug`` as given (a dict from a config is unpacked), else the
    dataset's ``default``."""
    return AugmentRanges(**aug) if isinstance(aug, dict) else (aug or default)


def crop_matrix(
    center: Sequence[float] | np.ndarray,
    window: float | np.ndarray,
    size: int,
    params: AugmentParams = AugmentParams(),
) -> np.ndarray:
    """(…, 2, 3) affine original pixels → crop pixels of an S×S crop.

    center (…, 2) and window (…,) (side of the square window in original pixels, before the
    augmentation scale) may carry a leading T for per-frame crops; the same ``params`` apply to all.
    """
    center = np.asarray(center, dtype=np.float64)
    window = np.asarray(window, dtype=np.float64) * params.scale
    theta = np.deg2rad(params.angle)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    if params.flip:
        rot = np.diag([-1.0, 1.0]) @ rot
    lead = np.broadcast_shapes(center.shape[:-1], window.shape)
    lin = np.broadcast_to(rot * (size / window)[..., None, None], lead + (2, 2))  # (…, 2, 2)
    offset = size / 2.0 + np.asarray(params.shift, dtype=np.float64) * (size / REFERENCE_CROP)
    trans = offset - np.einsum("...ij,...j->...i", lin, center)
    return np.concatenate([lin, trans[..., None]], axis=-1)


def normalized_crop(matrix_px: np.ndarray, size: int) -> np.ndarray:
    """The sample's ``crop`` entry: original pixels → crop-normalised [0, 1] (float32)."""
    return (matrix_px / size).astype(np.float32)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(…, 2, 3) affine a∘b (apply b, then a)."""
    lin = a[..., :2] @ b[..., :2]
    return np.concatenate([lin, (a[..., :2] @ b[..., 2:]) + a[..., 2:]], axis=-1)


def warp(frames: np.ndarray, matrix_px: np.ndarray, size: int) -> np.ndarray:
    """Crop uint8 frames ([T,] H, W, 3) with affine(s) ([T,] 2, 3) → ([T,] S, S, 3), bilinear,
    black outside the image."""
    single = frames.ndim == 3
    frames = frames[None] if single else frames
    mats = np.broadcast_to(matrix_px, (len(frames), 2, 3))
    out = np.stack(
        [
            cv2.warpAffine(f, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
            for f, m in zip(frames, mats)
        ]
    )
    return out[0] if single else out


def channels_first(frames: np.ndarray) -> np.ndarray:
    """uint8 ([T,] H, W, 3) → uint8 ([T,] 3, H, W), contiguous: what a sample's ``image`` ships."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(frames, np.uint8), -1, -3))


def normalize_image(image: np.ndarray, chpower: Sequence[float] | None = None) -> np.ndarray:
    """uint8 ([T,] H, W, 3) → float32 ([T,] 3, H, W) in [−1, 1]: ((pix/255)^gamma_c − 0.5)·2.

    For frames that never pass a DataLoader (prediction on videos, full-frame views); samples ship
    uint8 (``channels_first``) and their ``chpower``, converted on the device by
    ``deephar.images.image_to_float`` — the one implementation of the formula."""
    gamma = None if chpower is None else torch.tensor(chpower, dtype=torch.float32)
    return image_to_float(torch.from_numpy(channels_first(image)), gamma).numpy()


def pose_targets(joints_px: np.ndarray, valid: np.ndarray, crop: np.ndarray):
    """Masked network targets from original-pixel joints.

    joints_px (…, J, 2|3): x, y in original pixels (+ z already normalised for 3D samples);
    valid (…, J) annotated; crop (…, 2, 3) from :func:`normalized_crop`.
    Returns pose (…, J, 3) float32 (z = 0 for 2D), pose_valid (…, J, 3) bool (x, y valid iff
    annotated and inside (0, 1); z valid iff x, y valid, the sample is 3D and z ≥ 0),
    visible (…, J) float32 (1 iff x, y valid).
    """
    joints_px = np.asarray(joints_px, dtype=np.float64)
    xy = to_crop(joints_px[..., :2], np.asarray(crop, dtype=np.float64))
    inside = np.all((xy > 0.0) & (xy < 1.0), axis=-1) & np.asarray(valid, dtype=bool)
    is_3d = joints_px.shape[-1] == 3
    z = joints_px[..., 2] if is_3d else np.zeros(xy.shape[:-1])
    z_valid = inside & (z >= 0.0) if is_3d else np.zeros_like(inside)
    pose = np.concatenate([xy, z[..., None]], axis=-1).astype(np.float32)
    pose = np.where(inside[..., None], pose, 0.0).astype(np.float32)
    pose_valid = np.stack([inside, inside, z_valid], axis=-1)
    return pose, pose_valid, inside.astype(np.float32)


def crop_sample(
    frames: np.ndarray | None,
    joints_px: np.ndarray,
    valid: np.ndarray,
    center: Sequence[float] | np.ndarray,
    window: float | np.ndarray,
    size: int,
    flip_perm: np.ndarray,
    params: AugmentParams = AugmentParams(),
    stored: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Crop, augment and mask one sample or clip: the geometric part of the sample contract.

    frames: uint8 ([T,] H, W, 3) or None (poses only, no ``image`` key); joints_px ([T,] J, 2|3);
    valid ([T,] J). stored: ([T,] 2, 3) original → ``frames`` pixels when ``frames`` are stored
    crops or a reduced decode (prepared data, JPEG DCT scaling), None when they are the originals;
    the crop is one warp either way, and the photometric augmentation follows it. With
    ``params.flip`` the joints are mirrored by the matrix *and* re-indexed with ``flip_perm`` so
    that index j stays the layout's joint j; ``pose_px`` is re-indexed the same way so that
    predictions mapped back through ``crop`` compare with it directly.
    Returns image (uint8 ([T,] 3, S, S)), chpower, pose, pose_valid, visible, crop, pose_px,
    pose_px_valid.
    """
    joints_px = np.asarray(joints_px, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if params.flip:
        joints_px, valid = joints_px[..., flip_perm, :], valid[..., flip_perm]
    lead = joints_px.shape[:-2]
    matrix = crop_matrix(center, window, size, params)
    crop = np.broadcast_to(normalized_crop(matrix, size), lead + (2, 3)).copy()
    pose, pose_valid, visible = pose_targets(joints_px, valid, crop)
    out = {
        "pose": pose,
        "pose_valid": pose_valid,
        "visible": visible,
        "crop": crop,
        "pose_px": joints_px[..., :2].astype(np.float32),
        "pose_px_valid": valid,
    }
    if frames is not None:
        if stored is not None:
            matrix = compose(matrix, invert_affine(stored))
        crops = warp(frames, matrix, size)  # ([T,] S, S, 3) uint8
        if params.photometric is not None:
            crops = apply_photometric(crops, params.photometric, params.photo_seed)
        out["image"] = channels_first(crops)  # uint8: normalised on the device (deephar.images)
        out["chpower"] = np.asarray(params.chpower, np.float32)  # (3,) its per-channel gamma
    return out


# --- person boxes and depth ranges shared by the readers (official rules, SPEC "Data facts") ---

BOX_ENLARGE, MIN_WINDOW = 1.5, 32.0  # clip box: valid-joint box ×1.5, squared, side ≥ 32 px
DEPTH_HALF_RANGE_MM = 1000.0  # normalised depth spans root ± 1 m (× augmentation scale)


def clip_box(joints: np.ndarray, valid: np.ndarray, image_hw: tuple[int, int]):
    """Centre (2,) and square window side of a clip from joints (T, J, 2), valid (T, J)."""
    keys = np.unique([0, len(joints) // 2, len(joints) - 1])
    use = valid[keys] if valid[keys].any() else valid
    if not use.any():
        height, width = image_hw
        return np.array([(width - 1) / 2.0, (height - 1) / 2.0]), float(max(height, width))
    pts = joints[keys] if valid[keys].any() else joints
    lo = np.where(use[..., None], pts, np.inf).min(axis=-2)  # (F, 2) per-frame boxes
    hi = np.where(use[..., None], pts, -np.inf).max(axis=-2)
    has = use.any(axis=-1)
    mid, half = (lo[has] + hi[has]) / 2.0, BOX_ENLARGE * (hi[has] - lo[has]) / 2.0
    lo, hi = (mid - half).min(axis=0), (mid + half).max(axis=0)
    return (lo + hi) / 2.0, float(max(np.max(hi - lo), MIN_WINDOW))


def depth_range(root_depth: float, scale: float = 1.0) -> tuple[float, float]:
    """(origin, range) mm of the normalised depth: z_norm = (z − origin) / range, root ↦ 0.5."""
    return root_depth - DEPTH_HALF_RANGE_MM * scale, 2 * DEPTH_HALF_RANGE_MM * scale
