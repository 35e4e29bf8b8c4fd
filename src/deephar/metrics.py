"""Evaluation protocols: pure torch functions first, then torchmetrics wrappers that only accumulate.

Alphabet: N samples (frames or clips, any leading dimensions flattened by the caller), J joints,
Th thresholds, A actions, V videos, G groups (e.g. Human3.6M actions).

Predictions are compared in the original image / camera frame: ``decode_pose_px`` and
``decode_pose_mm`` map the network's crop-normalised output back through the sample's ``crop``
affine (and ``depth``, ``camera``). Every Metric keeps sum- or cat-states only, so DDP reduces it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from deephar.crop import to_crop, to_pixels

# Official MPII AUC grid: PCKh at thresholds 0:0.01:0.5 (float64, so 0.2 and 0.5 are exact decimals).
AUC_THRESHOLDS = torch.arange(51, dtype=torch.float64) / 100


# ---- crop-normalised predictions ↔ original pixels / camera millimetres ----
def _full_precision(*tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` in float32 at least (float64 stays): bf16 holds 8 bits, 4 px at 1000 px."""
    dtype = torch.promote_types(tensors[0].dtype, torch.float32)
    return tuple(t.to(dtype) for t in tensors)


def _no_autocast(device: torch.device) -> torch.autocast:
    """A region where autocast (Lightning's bf16-mixed) leaves the matmuls in the inputs' dtype."""
    return torch.autocast(device_type=device.type, enabled=False)


def encode_pose_px(pose_px: Tensor, crop: Tensor) -> Tensor:
    """Original pixels (…, J, 2) → crop-normalised (…, J, 2) through ``crop`` (…, 2, 3)
    (``deephar.crop.to_crop`` in float32 at least, outside autocast)."""
    pose_px, crop = _full_precision(pose_px, crop)
    with _no_autocast(crop.device):
        return to_crop(pose_px[..., :2], crop)


def decode_pose_px(pose: Tensor, crop: Tensor) -> Tensor:
    """Crop-normalised pose (…, J, 2|3) → original pixels (…, J, 2): inverse of ``crop`` (…, 2, 3).

    Computed in float32 at least and outside autocast, whatever the network's precision.
    """
    pose, crop = _full_precision(pose, crop)
    with _no_autocast(crop.device):
        return to_pixels(pose[..., :2], crop)


def encode_pose_mm(pose_mm: Tensor, crop: Tensor, depth: Tensor, camera: Tensor) -> Tensor:
    """Camera-frame mm (…, J, 3) → network pose (…, J, 3) (pinhole projection; inverse of decode)."""
    focal, centre = camera[..., None, :2], camera[..., None, 2:]  # (…, 1, 2)
    z_mm = pose_mm[..., 2:]
    uv = focal * pose_mm[..., :2] / z_mm + centre  # (…, J, 2) pixels
    z = (z_mm - depth[..., None, :1]) / depth[..., None, 1:]
    return torch.cat([encode_pose_px(uv, crop), z], dim=-1)


def decode_pose_mm(pose: Tensor, crop: Tensor, depth: Tensor, camera: Tensor) -> Tensor:
    """Network pose (…, J, 3) → camera-frame millimetres (…, J, 3).

    z_mm = origin + z·range with depth (…, 2) = (origin, range) (H36M: origin = d − 1000·s, range
    = 2000·s, i.e. z_mm = 2000·(z − 0.5) + d); x, y: ``decode_pose_px`` then the inverse pinhole
    with camera (…, 4) = (fx, fy, cx, cy) — lens distortion is ignored, as in the official
    evaluation. Leading dimensions must broadcast: for clips pass ``camera[:, None]``.
    """
    pose, crop, depth, camera = _full_precision(pose, crop, depth, camera)
    uv = decode_pose_px(pose, crop)  # (…, J, 2)
    z_mm = depth[..., None, :1] + pose[..., 2:] * depth[..., None, 1:]  # (…, J, 1)
    focal, centre = camera[..., None, :2], camera[..., None, 2:]
    return torch.cat([(uv - centre) / focal * z_mm, z_mm], dim=-1)


# ---- PCK / PCKh ----
def pckh(
    pred_px: Tensor, gt_px: Tensor, valid: Tensor, ref: Tensor, threshold: float | Tensor = 0.5
) -> tuple[Tensor, Tensor]:
    """Per-joint PCK hits and counts, official MPII definition (``pck`` is the same function).

    pred_px, gt_px (N, J, 2) original pixels; valid (N, J) ground truth annotated (missing joints
    are excluded); ref (N,) reference length in pixels: for PCKh the head size 0.6·‖head-box
    diagonal‖ (the sample's ``pck_ref``). A joint is correct when ‖pred − gt‖ / ref ≤ threshold
    (inclusive). threshold: scalar or (Th,). Returns hits (J,) or (Th, J) and counts (J,), int64.
    """
    if pred_px.shape != gt_px.shape or valid.shape != pred_px.shape[:-1]:
        raise ValueError(
            f"pckh: pred {tuple(pred_px.shape)}, gt {tuple(gt_px.shape)}, valid "
            f"{tuple(valid.shape)} must be (N, J, 2), (N, J, 2), (N, J)"
        )
    dist = (pred_px.double() - gt_px.double()).norm(dim=-1) / ref.double()[:, None]  # (N, J)
    thr = torch.as_tensor(threshold, dtype=torch.float64, device=dist.device)
    valid = valid.bool()
    hits = (dist <= thr[..., None, None]) & valid  # ([Th,] N, J)
    return hits.sum(-2), valid.sum(-2)


pck = pckh


def joint_mask(num_joints: int, exclude: Sequence[int] | Tensor = ()) -> Tensor:
    """(J,) bool, True for the joints that enter the mean (``exclude``: indices or a bool mask)."""
    exclude = torch.as_tensor(exclude)
    if exclude.dtype == torch.bool:
        if exclude.shape != (num_joints,):
            raise ValueError(f"exclude mask has shape {tuple(exclude.shape)}, want ({num_joints},)")
        return ~exclude
    mask = torch.ones(num_joints, dtype=torch.bool)
    mask[exclude.long()] = False
    return mask


def pck_score(hits: Tensor, counts: Tensor, include: Tensor) -> Tensor:
    """Pooled PCK over the included joints: Σ hits / Σ counts (the official ``match.sum() /
    valid.sum()``). hits (…, J), counts (J,), include (J,) bool → (…)."""
    return hits[..., include].sum(-1).double() / counts[include].sum().clamp(min=1).double()


def pck_auc(curve: Tensor, thresholds: Tensor = AUC_THRESHOLDS) -> Tensor:
    """Area under the PCK curve (Th,) by trapezoids, ÷ the largest threshold (official: ÷ 0.5)."""
    thresholds = thresholds.to(curve)
    return torch.trapezoid(curve, thresholds) / thresholds[-1]


# ---- MPJPE ----
def procrustes_align(pred: Tensor, gt: Tensor, valid: Tensor) -> Tensor:
    """Similarity transform (scale, rotation, translation) of pred (N, J, 3) onto gt fitted on the
    valid joints (N, J) (batched SVD, reflections excluded). Returns the aligned pred (N, J, 3).
    A sample with a non-finite valid joint (a diverged network) is not fitted (the SVD of
    non-finite values raises on the CPU): it comes back all NaN, and so its error."""
    w = valid.to(pred.dtype)[..., None]  # (N, J, 1)
    p0, g0 = torch.where(w > 0, pred, 0), torch.where(w > 0, gt, 0)  # the fitted joints only
    fit = (p0.isfinite().flatten(1).all(1) & g0.isfinite().flatten(1).all(1))[:, None, None]
    p0, g0 = torch.where(fit, p0, 0), torch.where(fit, g0, 0)  # (N, J, 3)
    n = w.sum(1, keepdim=True).clamp(min=1)
    mu_p, mu_g = (p0 * w).sum(1, keepdim=True) / n, (g0 * w).sum(1, keepdim=True) / n
    x, y = (p0 - mu_p) * w, (g0 - mu_g) * w  # (N, J, 3)
    u, s, vh = torch.linalg.svd(x.transpose(1, 2) @ y)  # H = Xᵀ Y (N, 3, 3)
    v = vh.transpose(1, 2)
    sign = torch.where(torch.linalg.det(v @ u.transpose(1, 2)) < 0, -1.0, 1.0).to(pred.dtype)
    d = torch.ones_like(s)
    d[:, -1] = sign
    rot = v @ torch.diag_embed(d) @ u.transpose(1, 2)  # (N, 3, 3), rot @ x_i ≈ y_i
    scale = (s * d).sum(-1) / x.square().sum((1, 2)).clamp(min=1e-12)  # (N,)
    aligned = scale[:, None, None] * (pred - mu_p) @ rot.transpose(1, 2) + mu_g
    return torch.where(fit, aligned, torch.nan)


def joint_errors(
    pred_mm: Tensor, gt_mm: Tensor, valid: Tensor, root: int = 0, procrustes: bool = False
) -> tuple[Tensor, Tensor]:
    """Per-joint Euclidean errors (N, J) in mm and the joints that count (N, J) bool.

    Protocol 1: both poses root-aligned (joint ``root`` subtracted; a sample whose root is not
    valid counts no joint). With ``procrustes`` (protocol 2) pred is instead aligned to gt by
    ``procrustes_align``. Invalid joints get error 0.
    """
    if pred_mm.shape != gt_mm.shape or valid.shape != pred_mm.shape[:-1]:
        raise ValueError(
            f"mpjpe: pred {tuple(pred_mm.shape)}, gt {tuple(gt_mm.shape)}, valid "
            f"{tuple(valid.shape)} must be (N, J, 3), (N, J, 3), (N, J)"
        )
    pred_mm, gt_mm, valid = pred_mm.double(), gt_mm.double(), valid.bool()
    if procrustes:
        pred_mm = procrustes_align(pred_mm, gt_mm, valid)
    else:
        valid = valid & valid[:, root : root + 1]
        pred_mm, gt_mm = pred_mm - pred_mm[:, root : root + 1], gt_mm - gt_mm[:, root : root + 1]
    err = (pred_mm - gt_mm).norm(dim=-1)
    return torch.where(valid, err, torch.zeros((), dtype=err.dtype)), valid


def mpjpe(pred_mm: Tensor, gt_mm: Tensor, valid: Tensor, root: int = 0) -> Tensor:
    """Mean per-joint position error (protocol 1, root-aligned), mm, over all valid joints."""
    err, valid = joint_errors(pred_mm, gt_mm, valid, root)
    return err.sum() / valid.sum().clamp(min=1)


def pa_mpjpe(pred_mm: Tensor, gt_mm: Tensor, valid: Tensor) -> Tensor:
    """Procrustes-aligned MPJPE (protocol 2), mm, over all valid joints."""
    err, valid = joint_errors(pred_mm, gt_mm, valid, procrustes=True)
    return err.sum() / valid.sum().clamp(min=1)


def video_hash(video_ids: Sequence[str]) -> Tensor:
    """(V,) int64 stable across processes (blake2b; Python's ``hash`` is salted per process)."""
    digests = [hashlib.blake2b(v.encode(), digest_size=8).digest() for v in video_ids]
    return torch.tensor([int.from_bytes(d, "little", signed=True) for d in digests])


# ---- accumulating wrappers ----
class PCK(Metric):
    """PCK at the ``report`` thresholds and its AUC over 0:0.01:0.5, pooled over included joints.

    update(pred_px (N, J, 2), gt_px (N, J, 2), valid (N, J), ref (N,)); ``ref`` is the sample's
    ``pck_ref`` in pixels: MPII 0.6·head-box diagonal (→ ``PCKh``); datasets without head boxes
    choose their own (e.g. Penn Action: the person box size, max(w, h), as usual with PCK@0.2).
    compute() → {f"{prefix}@{t:g}": …, f"{prefix}_auc": …} as fractions in [0, 1];
    ``per_joint(t)`` → (J,).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_joints: int, exclude=(), report=(0.5, 0.2), prefix="pck", **kwargs):
        super().__init__(**kwargs)
        self.prefix, self.report = prefix, tuple(report)
        self._index = {t: self._grid_index(t) for t in self.report}
        self.register_buffer("include", joint_mask(num_joints, exclude), persistent=False)
        self.add_state(
            "hits", torch.zeros(len(AUC_THRESHOLDS), num_joints, dtype=torch.long), "sum"
        )
        self.add_state("counts", torch.zeros(num_joints, dtype=torch.long), "sum")

    @staticmethod
    def _grid_index(threshold: float) -> int:
        index = int(round(threshold * 100))
        if not (0 <= index < len(AUC_THRESHOLDS) and abs(index / 100 - threshold) < 1e-9):
            raise ValueError(f"PCK threshold {threshold} is not on the grid 0:0.01:0.5")
        return index

    def update(self, pred_px: Tensor, gt_px: Tensor, valid: Tensor, ref: Tensor) -> None:
        hits, counts = pckh(pred_px, gt_px, valid, ref, AUC_THRESHOLDS.to(pred_px.device))
        self.hits += hits
        self.counts += counts

    def compute(self) -> dict[str, Tensor]:
        curve = pck_score(self.hits, self.counts, self.include)  # (Th,)
        out = {f"{self.prefix}@{t:g}": curve[i].float() for t, i in self._index.items()}
        out[f"{self.prefix}_auc"] = pck_auc(curve).float()
        return out

    def per_joint(self, threshold: float = 0.5) -> Tensor:
        """(J,) PCK of every joint (excluded ones too), NaN where a joint was never annotated."""
        hits = self.hits[self._grid_index(threshold)].double()
        return (hits / self.counts.double()).float()


class PCKh(PCK):
    """MPII PCKh: ``ref`` = 0.6·head-box diagonal; pass ``exclude`` = pelvis and thorax indices
    (``datamodules.layouts.PCKH_EXCLUDED`` in the evaluated layout). Keys "pckh@0.5", …"""

    def __init__(self, num_joints: int, exclude, report=(0.5, 0.2), prefix="pckh", **kwargs):
        super().__init__(num_joints, exclude, report, prefix, **kwargs)


class MPJPE(Metric):
    """MPJPE (protocol 1) and PA-MPJPE (protocol 2) in mm, pooled over all valid joints.

    update(pred_mm (N, J, 3), gt_mm (N, J, 3), valid (N, J), group (N,) int64 or None): ``group``
    (e.g. the Human3.6M action index, −1 = none) feeds ``per_group()`` → (G, 2) [mpjpe, pa_mpjpe]
    (NaN for empty groups). compute() → {"mpjpe": …, "pa_mpjpe": …}.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, root: int = 0, num_groups: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.root = root
        self.add_state("sums", torch.zeros(num_groups + 1, 2, dtype=torch.float64), "sum")
        self.add_state("counts", torch.zeros(num_groups + 1, dtype=torch.long), "sum")

    def update(self, pred_mm: Tensor, gt_mm: Tensor, valid: Tensor, group: Tensor | None = None):
        err, ok = joint_errors(pred_mm, gt_mm, valid, self.root)
        pa_err, _ = joint_errors(pred_mm, gt_mm, ok, procrustes=True)  # same joints as ``err``
        per_sample = torch.stack([err.sum(-1), pa_err.sum(-1)], -1)  # (N, 2)
        slot = torch.zeros(len(err), dtype=torch.long, device=err.device)  # slot 0: everything
        if group is not None:
            slot = torch.where(group >= 0, group.long() + 1, slot)
        self.sums[0] += per_sample.sum(0)
        self.counts[0] += ok.sum()
        in_group = slot > 0
        self.sums.index_add_(0, slot[in_group], per_sample[in_group])
        self.counts.index_add_(0, slot[in_group], ok.sum(-1)[in_group])

    def compute(self) -> dict[str, Tensor]:
        value = (self.sums[0] / self.counts[0].clamp(min=1)).float()
        return {"mpjpe": value[0], "pa_mpjpe": value[1]}

    def per_group(self) -> Tensor:
        return (self.sums[1:] / self.counts[1:, None]).float()


class VideoAccuracy(Metric):
    """Multi-clip video accuracy: clip scores combined per video, then argmax.

    update(logits (N, A), labels (N,), video_ids: list of str or (N,) int64). ``reduction="mean"``
    averages the clips' softmax scores; ``"prod"`` multiplies them (sum of log-softmax; the
    official Penn Action evaluation). DDP: string ids are hashed to int64 with ``video_hash``
    (stable across processes) and (id, scores, label) are cat-states, gathered from all ranks
    before grouping, so clips of one video seen by different ranks are combined. A clip duplicated
    by a DistributedSampler's padding counts twice in its video's average.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, reduction: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if reduction not in ("mean", "prod"):
            raise ValueError(f"VideoAccuracy reduction must be 'mean' or 'prod', got {reduction!r}")
        self.reduction = reduction
        self.add_state("ids", [], "cat")
        self.add_state("scores", [], "cat")
        self.add_state("labels", [], "cat")

    def update(self, logits: Tensor, labels: Tensor, video_ids: Sequence[str] | Tensor) -> None:
        if not isinstance(video_ids, Tensor):
            video_ids = video_hash(list(video_ids))
        scores = logits.float().softmax(-1) if self.reduction == "mean" else logits.log_softmax(-1)
        self.ids.append(video_ids.to(logits.device).long())
        self.scores.append(scores.float())
        self.labels.append(labels.long())

    def compute(self) -> Tensor:
        ids, scores, labels = (dim_zero_cat(s) for s in (self.ids, self.scores, self.labels))
        videos, inverse = torch.unique(ids, return_inverse=True)  # (V,), (N,)
        total = scores.new_zeros(len(videos), scores.shape[-1]).index_add_(0, inverse, scores)
        lo = labels.new_full((len(videos),), 2**62).scatter_reduce(0, inverse, labels, "amin")
        hi = labels.new_full((len(videos),), -(2**62)).scatter_reduce(0, inverse, labels, "amax")
        if (lo != hi).any():
            raise ValueError("VideoAccuracy: clips of one video carry different labels")
        labelled = lo >= 0
        finite = torch.isfinite(total).all(-1)  # a video with non-finite scores is a miss
        correct = ((total.argmax(-1) == lo) & finite)[labelled]
        return correct.float().sum() / labelled.sum().clamp(min=1)
