"""Metrics: hand-computed PCK/AUC/MPJPE, Procrustes invariance, decode round trips, accumulation,
and PCKh against a straightforward NumPy evaluation of the official formula on real MPII labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import torch

from datamodules.layouts import MPII, PCKH_EXCLUDED
from deephar.metrics import (
    MPJPE,
    PCK,
    PCKh,
    VideoAccuracy,
    decode_pose_mm,
    decode_pose_px,
    encode_pose_mm,
    encode_pose_px,
    joint_errors,
    joint_mask,
    mpjpe,
    pa_mpjpe,
    pck_auc,
    pck_score,
    pckh,
    video_hash,
)


def _offsets(distances):
    """(N, J, 2) pixel offsets of the given lengths along the 3-4-5 direction (exact in binary)."""
    d = torch.as_tensor(distances, dtype=torch.float64)
    return torch.stack([d * 0.6, d * 0.8], -1)


# ---- PCKh ----
def test_pckh_hand_computed_and_inclusive():
    # ref = 10 px; offsets of 3, 5, 6 px → normalised 0.3, 0.5, 0.6: at 0.5 the first two hit
    # (0.5 ≤ 0.5 is inclusive), the third misses; joint 3 is missing and never counts.
    gt = torch.tensor(
        [[[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0]]], dtype=torch.float64
    )
    pred = gt + _offsets([[3.0, 5.0, 6.0, 0.0]])
    valid = torch.tensor([[True, True, True, False]])
    hits, counts = pckh(pred, gt, valid, torch.tensor([10.0]), 0.5)
    assert hits.tolist() == [1, 1, 0, 0] and counts.tolist() == [1, 1, 1, 0]
    hits, _ = pckh(pred, gt, valid, torch.tensor([10.0]), torch.tensor([0.29, 0.3, 0.6]))
    assert hits.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]]


def test_pck_score_excludes_joints_and_pools_counts():
    hits = torch.tensor([3, 1, 0, 2])
    counts = torch.tensor([4, 1, 5, 2])
    include = joint_mask(4, [2])
    # (3 + 1 + 2) / (4 + 1 + 2) = 6/7
    assert pck_score(hits, counts, include).item() == pytest.approx(6 / 7)
    assert joint_mask(4, torch.tensor([False, False, True, False])).tolist() == include.tolist()


def test_perfect_prediction_scores_one():
    gt = torch.rand(5, 16, 2, dtype=torch.float64) * 100
    metric = PCKh(16, exclude=[6, 7])
    metric.update(gt, gt, torch.ones(5, 16, dtype=torch.bool), torch.full((5,), 7.0))
    out = metric.compute()
    assert out["pckh@0.5"] == 1 and out["pckh@0.2"] == 1
    # the curve is 1 from threshold 0: AUC = 1
    assert out["pckh_auc"].item() == pytest.approx(1.0)


def test_auc_of_a_step_curve():
    # Every joint at normalised distance 0.205: PCK = 0 for t ≤ 0.20 and 1 for t ≥ 0.21.
    # Trapezoids: 0.01·(0 + 1)/2 = 0.005 on [0.20, 0.21], 0.29 on [0.21, 0.5] → 0.295 / 0.5 = 0.59.
    gt = torch.zeros(3, 2, 2, dtype=torch.float64)
    pred = gt + _offsets(torch.full((3, 2), 2.05))
    metric = PCK(2, report=(0.2, 0.21, 0.5))
    metric.update(pred, gt, torch.ones(3, 2, dtype=torch.bool), torch.full((3,), 10.0))
    out = metric.compute()
    assert out["pck@0.2"] == 0 and out["pck@0.21"] == 1 and out["pck@0.5"] == 1
    assert out["pck_auc"].item() == pytest.approx(0.59)
    curve = torch.tensor([0.0, 0.0, 1.0])  # thresholds 0, 0.25, 0.5: (0.125 · 1) / 0.5 = 0.25
    assert pck_auc(curve, torch.tensor([0.0, 0.25, 0.5])).item() == pytest.approx(0.25)


def test_pck_metric_accumulates_like_one_update_and_reports_per_joint():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(8, 4, 2, generator=g) * 50
    pred = gt + torch.randn(8, 4, 2, generator=g) * 4
    valid = torch.rand(8, 4, generator=g) > 0.2
    ref = torch.rand(8, generator=g) * 10 + 5
    one, two = PCKh(4, exclude=[0]), PCKh(4, exclude=[0])
    one.update(pred, gt, valid, ref)
    two.update(pred[:3], gt[:3], valid[:3], ref[:3])
    two.update(pred[3:], gt[3:], valid[3:], ref[3:])
    assert one.compute() == two.compute()
    hits, counts = pckh(pred, gt, valid, ref, 0.5)
    assert torch.allclose(one.per_joint(0.5), hits / counts)
    with pytest.raises(ValueError, match="grid"):
        PCK(4, report=(0.55,))


def _mpii_ground_truth(path):
    """Straight from the official struct: (N, 16, 2) 0-based-id joints, (N, 16) annotated, head size."""
    annolist = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["annolist"]
    joints = np.zeros((len(annolist), 16, 2))
    annotated = np.zeros((len(annolist), 16), dtype=bool)
    head = np.zeros(len(annolist))
    for i, image in enumerate(annolist):
        rect = image.annorect
        head[i] = 0.6 * np.hypot(rect.x2 - rect.x1, rect.y2 - rect.y1)
        for point in np.atleast_1d(rect.annopoints.point):
            joints[i, point.id] = point.x, point.y
            annotated[i, point.id] = True
    return joints, annotated, head


def test_pckh_matches_official_formula_on_real_mpii_annotations(samples_dir):
    gt, annotated, head = _mpii_ground_truth(samples_dir / "mpii" / "detections.mat")
    assert (~annotated).any(), "the sample should contain missing joints"
    rng = np.random.default_rng(0)
    # Known pixel offsets: a random direction and a length spread around the 0.5·head threshold.
    angle = rng.uniform(0, 2 * np.pi, gt.shape[:2])
    length = rng.choice([0.1, 0.3, 0.45, 0.55, 0.8], gt.shape[:2]) * head[:, None]
    pred = gt + np.stack([np.cos(angle), np.sin(angle)], -1) * length[..., None]

    # NumPy reference, written from the official definition: joints 6 (pelvis) and 7 (thorax)
    # excluded, missing joints excluded, correct when distance / head size <= 0.5, pooled.
    correct = total = 0
    for i in range(len(gt)):
        for j in range(16):
            if j in (6, 7) or not annotated[i, j]:
                continue
            total += 1
            correct += math.dist(pred[i, j], gt[i, j]) / head[i] <= 0.5
    expected = correct / total

    exclude = [MPII.index(name) for name in PCKH_EXCLUDED]
    hits, counts = pckh(
        torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(annotated),
        torch.from_numpy(head), 0.5,
    )  # fmt: skip
    assert sorted(exclude) == [6, 7]
    assert pck_score(hits, counts, joint_mask(16, exclude)).item() == pytest.approx(
        expected, abs=1e-12
    )
    assert 0.3 < expected < 0.9  # the offsets straddle the threshold


# ---- MPJPE ----
def test_mpjpe_hand_computed():
    gt = torch.tensor([[[0.0, 0.0, 1000.0], [100.0, 0.0, 1000.0], [0.0, 100.0, 1000.0]]])
    # a global translation (removed by root alignment) and a (3, 4, 0) error on joint 1:
    # errors 0, 5, 0 → 5/3 mm
    pred = gt + torch.tensor([50.0, -20.0, 7.0])
    pred[0, 1] += torch.tensor([3.0, 4.0, 0.0])
    valid = torch.ones(1, 3, dtype=torch.bool)
    assert mpjpe(pred, gt, valid).item() == pytest.approx(5 / 3)
    assert mpjpe(gt, gt, valid).item() == 0.0
    # masking joint 1 removes the only error
    assert mpjpe(pred, gt, torch.tensor([[True, False, True]])).item() == pytest.approx(
        0.0, abs=1e-9
    )


def _random_rotation(n, g):
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    return q * torch.sign(torch.linalg.det(q))[:, None, None]  # det +1


def test_pa_mpjpe_invariant_to_similarity_transforms():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(6, 17, 3, generator=g, dtype=torch.float64) * 300
    noisy = gt + torch.randn(6, 17, 3, generator=g, dtype=torch.float64) * 20
    valid = torch.ones(6, 17, dtype=torch.bool)
    rot = _random_rotation(6, g)
    scale = torch.rand(6, 1, 1, generator=g, dtype=torch.float64) + 0.5
    shift = torch.randn(6, 1, 3, generator=g, dtype=torch.float64) * 500
    moved = scale * gt @ rot.transpose(1, 2) + shift
    assert pa_mpjpe(moved, gt, valid).item() == pytest.approx(0.0, abs=1e-6)
    moved_noisy = scale * noisy @ rot.transpose(1, 2) + shift
    assert pa_mpjpe(moved_noisy, gt, valid).item() == pytest.approx(
        pa_mpjpe(noisy, gt, valid).item()
    )
    assert 0 < pa_mpjpe(noisy, gt, valid) < mpjpe(noisy, gt, valid)


def test_pa_mpjpe_does_not_use_reflections():
    gt = torch.randn(1, 10, 3, dtype=torch.float64)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert pa_mpjpe(mirrored, gt, torch.ones(1, 10, dtype=torch.bool)) > 0.05


def test_mpjpe_metric_pools_and_breaks_down_by_group():
    gt = torch.zeros(3, 2, 3)
    pred = gt.clone()
    pred[:, 1, 0] = torch.tensor([10.0, 20.0, 60.0])  # per-sample joint errors (0, e)
    metric = MPJPE(num_groups=2)
    metric.update(pred, gt, torch.ones(3, 2, dtype=torch.bool), torch.tensor([0, 1, -1]))
    assert metric.compute()["mpjpe"].item() == pytest.approx(90 / 6)
    per = metric.per_group()
    assert per[:, 0].tolist() == pytest.approx([5.0, 10.0])


# ---- decoding ----
def _crops(n, g):
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    scale = torch.rand(n, generator=g, dtype=torch.float64) * 0.01 + 0.002
    rot = torch.stack([torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)], -1)
    lin = rot.reshape(n, 2, 2) * scale[:, None, None]
    return torch.cat([lin, torch.rand(n, 2, 1, generator=g, dtype=torch.float64)], -1)


def test_decode_px_round_trip_and_known_crop():
    g = torch.Generator().manual_seed(0)
    crop = _crops(4, g)
    px = torch.rand(4, 5, 2, generator=g, dtype=torch.float64) * 1000
    assert torch.allclose(decode_pose_px(encode_pose_px(px, crop), crop), px)
    norm = torch.rand(4, 5, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(encode_pose_px(decode_pose_px(norm, crop), crop), norm[..., :2])
    # window of 200 px centred on (100, 50): p ↦ (p − c)/200 + 0.5, so the crop centre is (100, 50)
    known = torch.tensor([[[1 / 200, 0, 0.0], [0, 1 / 200, 0.25]]], dtype=torch.float64)
    out = decode_pose_px(torch.tensor([[[0.5, 0.5], [0.0, 1.0]]], dtype=torch.float64), known)
    assert out.tolist() == [[[100.0, 50.0], [0.0, 150.0]]]


def test_decode_mm_round_trip_and_optical_axis():
    g = torch.Generator().manual_seed(1)
    crop = _crops(3, g)
    camera = torch.tensor([[1145.0, 1144.0, 512.0, 515.0]], dtype=torch.float64).expand(3, 4)
    depth = torch.tensor([[4000.0, 2000.0]], dtype=torch.float64).expand(3, 2)
    mm = torch.randn(3, 17, 3, generator=g, dtype=torch.float64) * 300 + torch.tensor(
        [0, 0, 5000.0]
    )
    assert torch.allclose(
        decode_pose_mm(encode_pose_mm(mm, crop, depth, camera), crop, depth, camera), mm
    )
    # a joint projecting on the principal point lies on the optical axis; z = 4000 + 0.5·2000
    axis = encode_pose_px(camera[:1, None, 2:], crop[:1])
    pose = torch.cat([axis, torch.tensor([[[0.5]]], dtype=torch.float64)], -1)
    out = decode_pose_mm(pose, crop[:1], depth[:1], camera[:1])
    assert out[0, 0].tolist() == pytest.approx([0.0, 0.0, 5000.0], abs=1e-6)


def test_decode_clips_broadcast():
    g = torch.Generator().manual_seed(2)
    crop = _crops(6, g).reshape(2, 3, 2, 3)  # (B, T, 2, 3)
    norm = torch.rand(2, 3, 4, 2, generator=g, dtype=torch.float64)
    flat = decode_pose_px(norm.flatten(0, 1), crop.flatten(0, 1))
    assert torch.allclose(decode_pose_px(norm, crop).flatten(0, 1), flat)


# ---- actions ----
def _video_clips():
    # video "a" (label 0): clip probabilities (0.9, 0.1), (0.9, 0.1), (0.001, 0.999)
    #   mean = (0.6003, 0.3997) → 0 (correct); product = (0.00081, 0.00999) → 1 (wrong)
    # video "b" (label 1): (0.2, 0.8) alone → correct either way
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.001, 0.999], [0.2, 0.8]])
    return probs.log(), torch.tensor([0, 0, 0, 1]), ["a", "a", "a", "b"]


@pytest.mark.parametrize("reduction, expected", [("mean", 1.0), ("prod", 0.5)])
def test_video_accuracy_combines_clips(reduction, expected):
    logits, labels, ids = _video_clips()
    metric = VideoAccuracy(reduction)
    metric.update(logits, labels, ids)
    assert metric.compute().item() == pytest.approx(expected)


def test_video_accuracy_merges_clips_from_two_ranks():
    logits, labels, ids = _video_clips()
    rank0, rank1 = VideoAccuracy(), VideoAccuracy()
    rank0.update(logits[:2], labels[:2], ids[:2])
    rank1.update(logits[2:], labels[2:], video_hash(ids[2:]))
    rank0.merge_state(rank1)  # what the cat-state all-gather does under DDP
    assert rank0.compute().item() == pytest.approx(1.0)
    assert video_hash(["a", "b", "a"]).tolist()[0] == video_hash(["a"]).item()
    assert len(set(video_hash([f"v{i}" for i in range(1000)]).tolist())) == 1000


def test_video_accuracy_rejects_inconsistent_labels():
    metric = VideoAccuracy()
    metric.update(torch.zeros(2, 3), torch.tensor([0, 1]), ["x", "x"])
    with pytest.raises(ValueError, match="different labels"):
        metric.compute()


def test_decoding_under_bf16_autocast_equals_fp32():
    """Lightning's bf16-mixed wraps validation in autocast: the pixel decoding must not follow it."""
    g = torch.Generator().manual_seed(3)
    crop = _crops(64, g).float()
    px = torch.rand(64, 16, 2, generator=g) * 600 + 390  # 390–990 px, as MPII images
    norm = encode_pose_px(px, crop)
    camera = torch.tensor([[1145.0, 1144.0, 512.0, 515.0]]).expand(64, 4)
    depth = torch.tensor([[4000.0, 2000.0]]).expand(64, 2)
    pose = torch.cat([norm, torch.rand(64, 16, 1, generator=g)], -1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        px_amp = decode_pose_px(norm, crop)
        mm_amp = decode_pose_mm(pose, crop, depth, camera)
    assert px_amp.dtype == torch.float32
    assert (px_amp - decode_pose_px(norm, crop)).abs().max() < 0.01  # px
    assert (mm_amp - decode_pose_mm(pose, crop, depth, camera)).abs().max() < 0.1  # mm


# ---- non-finite predictions (a diverged network): never a traceback ----
def test_pa_mpjpe_of_a_non_finite_sample_is_nan_and_leaves_the_others_alone():
    """The SVD of a NaN sample raised on the CPU ("linalg.svd: The algorithm failed to converge
    because the input matrix contained non-finite values"); now that sample's errors are NaN and
    the finite samples' errors are those they have alone. Non-finite invalid joints are ignored."""
    gen = torch.Generator().manual_seed(0)
    gt = torch.randn(3, 10, 3, generator=gen, dtype=torch.float64)
    pred = gt + 0.1 * torch.randn(3, 10, 3, generator=gen, dtype=torch.float64)
    valid = torch.ones(3, 10, dtype=torch.bool)
    valid[2, 4] = False
    alone = [
        joint_errors(pred[i : i + 1], gt[i : i + 1], valid[i : i + 1], procrustes=True)[0]
        for i in range(3)
    ]
    pred[1, 3] = float("nan")  # a valid joint: the sample is non-finite
    pred[2, 4] = float("inf")  # an invalid joint: not fitted, not scored
    err, _ = joint_errors(pred, gt, valid, procrustes=True)
    assert torch.isnan(err[1]).all()
    torch.testing.assert_close(err[0], alone[0][0])
    torch.testing.assert_close(err[2], alone[2][0])
    assert torch.isnan(pa_mpjpe(pred, gt, valid))


def test_mpjpe_metric_of_non_finite_predictions_is_nan_without_raising():
    gt = torch.randn(4, 10, 3, dtype=torch.float64)
    pred = torch.full_like(gt, float("nan"))
    metric = MPJPE()
    metric.update(pred, gt, torch.ones(4, 10, dtype=torch.bool))
    values = metric.compute()
    assert torch.isnan(values["mpjpe"]) and torch.isnan(values["pa_mpjpe"])


def test_non_finite_predictions_are_misses_for_pck_and_video_accuracy():
    gt = torch.zeros(2, 4, 2, dtype=torch.float64)
    hits, counts = pckh(torch.full_like(gt, float("nan")), gt, torch.ones(2, 4), torch.ones(2))
    assert hits.sum() == 0 and counts.sum() == 8
    metric = VideoAccuracy()
    logits = torch.tensor([[float("nan"), 0.0], [0.0, 5.0]])  # NaN argmax would be class 0
    metric.update(logits, torch.tensor([0, 1]), ["a", "b"])
    assert metric.compute().item() == pytest.approx(0.5)
