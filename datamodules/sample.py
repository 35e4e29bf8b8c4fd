"""The sample contract: every dataset yields dicts with these keys (default_collate batches them).

Still image (a clip adds a leading T to every per-frame entry marked [T]):

| key          | dtype / shape            | meaning |
|--------------|--------------------------|---------|
| image        | uint8   [T](3, H, W)     | crop (RGB); the network reads ((pix/255)^chpower − 0.5)·2 |
| chpower      | float32 (3,)             | per-channel gamma of the crop (1 unless augmented) |
| pose         | float32 [T](J, 3)        | x, y ∈ [0, 1] of the crop; z normalised (root ↦ 0.5; 0 for 2D) |
| pose_valid   | bool    [T](J, 3)        | x, y valid iff annotated and inside the crop; z valid only for 3D |
| visible      | float32 [T](J,)          | visibility target: 1 iff 0 < x, y < 1 and annotated-visible |
| action       | int64   ()               | action label, −1 when none |
| dataset      | str                      | source dataset name ("mpii", "h36m", "penn", "ntu", …) |
| sample_id    | str                      | unique id of the frame / clip |
| video_id     | str                      | clips only: video the clip came from (multi-clip averaging) |
| crop         | float32 [T](2, 3)        | affine: original pixels (x, y, 1) → crop-normalised [0, 1] |
| pose_px      | float32 [T](J, 2)        | ground truth in original-image pixels (for PCK/PCKh) |
| pose_px_valid| bool    [T](J,)          | ground truth annotated (independent of the crop) |
| pck_ref      | float32 [T]()            | PCK reference length in pixels (MPII: 0.6·head-box diagonal) |
| pose_mm      | float32 [T](J, 3)        | camera-frame millimetres (3D datasets; zeros otherwise) |
| depth        | float32 [T](2,)          | (origin, range) in mm: z_mm = origin + z·range (0, 0 for 2D) |
| camera       | float32 (4,)             | fx, fy, cx, cy of the original image (zeros when unknown) |

Poses-only samples (action training on provided poses) omit ``image`` and ``chpower``. The uint8
crops become the network's float32 [−1, 1] input on the device, after the host → device copy
(``deephar.images.image_to_float``; the task modules' ``on_after_batch_transfer``).
"""

from __future__ import annotations

IMAGE_KEYS = ("image", "chpower")
POSE_KEYS = ("pose", "pose_valid", "visible")
EVAL_KEYS = ("crop", "pose_px", "pose_px_valid", "pck_ref", "pose_mm", "depth", "camera")
META_KEYS = ("action", "dataset", "sample_id")
SAMPLE_KEYS = IMAGE_KEYS + POSE_KEYS + EVAL_KEYS + META_KEYS
CLIP_KEYS = SAMPLE_KEYS + ("video_id",)


def missing_keys(sample: dict, clip: bool = False) -> list[str]:
    """Keys of the contract absent from ``sample`` (``IMAGE_KEYS`` may be absent: poses-only)."""
    keys = CLIP_KEYS if clip else SAMPLE_KEYS
    return [k for k in keys if k not in sample and k not in IMAGE_KEYS]
