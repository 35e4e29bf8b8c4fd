"""Losses: hand-computed values, masking, intermediate supervision, clips, ignored labels."""

from __future__ import annotations

import math

import pytest
import torch

from deephar.losses import action_loss, elastic_net, pose_loss, visibility_bce
from deephar.outputs import ActionOutput, PoseOutput


def _three_joints():
    # joint 0: Δ = (0.1, 0.2) → (0.1 + 0.01) + (0.2 + 0.04) = 0.35
    # joint 1: Δ = (0.0, -0.2) → 0 + (0.2 + 0.04) = 0.24
    # joint 2: invalid (a huge error that must not count)
    # Σ = 0.59 over 4 valid elements → 0.1475
    pred = torch.tensor([[[0.1, 0.2], [0.5, 0.5], [0.9, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.5, 0.7], [0.0, 0.0]]])
    valid = torch.tensor([[[True, True], [True, True], [False, False]]])
    return pred, target, valid


def test_elastic_net_hand_computed():
    pred, target, valid = _three_joints()
    assert elastic_net(pred, target, valid).item() == pytest.approx(0.1475)


def test_elastic_net_normalises_per_sample_like_the_official_code():
    pred, target, valid = _three_joints()
    # a second sample with 1 valid element, Δ = 0.5 → (0.5 + 0.25) / 1 = 0.75; mean = (0.1475 + 0.75) / 2
    pred2 = torch.cat([pred, torch.full_like(pred, 0.5)])
    target2 = torch.cat([target, torch.zeros_like(target)])
    valid2 = torch.cat([valid, torch.zeros_like(valid)])
    valid2[1, 0, 0] = True
    assert elastic_net(pred2, target2, valid2).item() == pytest.approx((0.1475 + 0.75) / 2)


def test_elastic_net_masked_elements_contribute_nothing():
    pred, target, valid = _three_joints()
    pred = pred.clone().requires_grad_(True)
    garbage = torch.where(valid, target, torch.full_like(target, float("nan")))
    loss = elastic_net(pred, garbage, valid)
    assert loss.item() == pytest.approx(0.1475)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and torch.all(pred.grad[~valid] == 0)
    assert pred.grad[0, 0].abs().min() > 0  # the valid joint with an error gets a gradient


def test_elastic_net_no_valid_element_is_zero():
    pred, target, valid = _three_joints()
    assert elastic_net(pred, target, torch.zeros_like(valid)).item() == 0.0


def test_elastic_net_shape_mismatch():
    pred, target, valid = _three_joints()
    with pytest.raises(ValueError, match="shape mismatch"):
        elastic_net(pred, target[..., :1], valid)


def _batch(b=2, j=4, seed=0, clip=None):
    g = torch.Generator().manual_seed(seed)
    lead = (b,) if clip is None else (b, clip)
    pose = torch.rand(*lead, j, 3, generator=g)
    pose_valid = torch.rand(*lead, j, 3, generator=g) > 0.3
    pose_valid[..., 1] = pose_valid[..., 0]
    return {
        "pose": pose,
        "pose_valid": pose_valid,
        "visible": (torch.rand(*lead, j, generator=g) > 0.5).float(),
        "pose_px_valid": torch.rand(*lead, j, generator=g) > 0.2,
    }


def _output(batch, k=3, dim=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = batch["pose"].shape[:-1]
    return PoseOutput(
        pose=[torch.rand(*shape, dim, generator=g) for _ in range(k)],
        visibility=[torch.rand(*shape, generator=g) * 0.98 + 0.01 for _ in range(k)],
        heatmaps=[],
    )


def _manual_bce(p, t, mask):
    """Per-sample masked mean of −[t log p + (1 − t) log(1 − p)], then mean over samples."""
    p, t, mask = (
        p.reshape(-1, p.shape[-1]),
        t.reshape(-1, t.shape[-1]),
        mask.reshape(-1, t.shape[-1]),
    )
    per = []
    for pi, ti, mi in zip(p.tolist(), t.tolist(), mask.tolist()):
        terms = [-(b * math.log(a) + (1 - b) * math.log(1 - a)) for a, b, m in zip(pi, ti, mi) if m]
        per.append(sum(terms) / max(1, len(terms)))
    return sum(per) / len(per)


def test_pose_loss_sums_blocks_and_weights_visibility():
    batch = _batch()
    out = _output(batch, k=3)
    total, parts = pose_loss(out, batch, visibility_weight=0.01)
    pose = sum(elastic_net(p, batch["pose"], batch["pose_valid"]) for p in out.pose)
    vis = sum(_manual_bce(v, batch["visible"], batch["pose_px_valid"]) for v in out.visibility)
    assert parts["pose"].item() == pytest.approx(pose.item(), rel=1e-6)
    assert parts["visibility"].item() == pytest.approx(vis, rel=1e-5)
    assert total.item() == pytest.approx(pose.item() + 0.01 * vis, rel=1e-6)
    assert parts["pose_last"].item() == pytest.approx(
        elastic_net(out.pose[-1], batch["pose"], batch["pose_valid"]).item()
    )


def test_pose_loss_ignores_z_where_invalid_and_for_2d_predictions():
    batch = _batch()
    batch["pose_valid"][..., 2] = False
    out3 = _output(batch, dim=3)
    out2 = PoseOutput([p[..., :2] for p in out3.pose], out3.visibility, [])
    moved = PoseOutput([p + torch.tensor([0.0, 0.0, 5.0]) for p in out3.pose], out3.visibility, [])
    ref = pose_loss(out3, batch)[0]
    assert pose_loss(moved, batch)[0].item() == pytest.approx(ref.item())
    assert pose_loss(out2, batch)[0].item() == pytest.approx(ref.item())
    batch["pose_valid"][0, 0, 2] = True
    assert pose_loss(moved, batch)[0].item() > ref.item()


def test_pose_loss_on_clips_equals_flattened_frames():
    batch = _batch(b=2, clip=3)
    out = _output(batch)
    flat = {k: v.flatten(0, 1) for k, v in batch.items()}
    flat_out = PoseOutput(
        [p.flatten(0, 1) for p in out.pose], [v.flatten(0, 1) for v in out.visibility], []
    )
    assert pose_loss(out, batch)[0].item() == pytest.approx(pose_loss(flat_out, flat)[0].item())


def test_visibility_bce_masks_unannotated_joints():
    p = torch.tensor([[0.9, 0.2, 0.5]])
    t = torch.tensor([[1.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, False]])
    # (−log 0.9 − log 0.8) / 2
    expected = (-math.log(0.9) - math.log(0.8)) / 2
    assert visibility_bce(torch.logit(p), t, mask).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dim", [2, 3])
def test_visibility_logits_are_the_networks_visibility_before_the_sigmoid(dim):
    """The loss reads logits taken from the heat maps; their sigmoid is the network's own
    visibility output (so training the logits trains what the network reports)."""
    from deephar.config import NetworkConfig
    from deephar.losses import visibility_logits
    from deephar.models.pose import PoseNet

    torch.manual_seed(0)
    cfg = NetworkConfig(input_size=32, num_joints=5, dim=dim, depth_maps=4, pose_blocks=2,
                        context_maps=2 if dim == 2 else 0, width=0.25)  # fmt: skip
    out = PoseNet(cfg).eval()(torch.randn(2, 3, 32, 32))
    logits = visibility_logits(out)
    assert len(logits) == 2 and logits[0].dtype == torch.float32
    for z, vis in zip(logits, out.visibility):
        torch.testing.assert_close(torch.sigmoid(z), vis, rtol=1e-5, atol=1e-6)


def _action_output(b=4, a=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = lambda: torch.randn(b, a, generator=g, requires_grad=True)  # noqa: E731
    return ActionOutput(pose_branch=[z(), z()], appearance_branch=[z(), z()], aggregate=z())


def test_action_loss_sums_all_predictions_and_ignores_missing_labels():
    out = _action_output()
    labels = torch.tensor([1, -1, 3, 0])
    expected = 0.0
    for z in out.all_logits:
        logp = z.detach().log_softmax(-1)
        expected += -(logp[0, 1] + logp[2, 3] + logp[3, 0]).item() / 3
    assert len(out.all_logits) == 5
    assert action_loss(out, labels).item() == pytest.approx(expected, rel=1e-6)


def test_action_loss_without_labels_is_zero_and_differentiable():
    out = _action_output()
    loss = action_loss(out, torch.full((4,), -1))
    loss.backward()
    assert loss.item() == 0.0 and out.aggregate.grad is not None


def test_action_loss_without_appearance_branch():
    out = _action_output()
    out = ActionOutput(out.pose_branch, [], None)
    labels = torch.tensor([1, 2, 3, 0])
    expected = sum(torch.nn.functional.cross_entropy(z, labels) for z in out.pose_branch)
    assert action_loss(out, labels).item() == pytest.approx(expected.item())


def test_visibility_joints_all_counts_unannotated_joints_as_targets_zero():
    """Official MPII script: BCE over every joint; ours (default): annotated joints only."""
    from deephar.losses import pose_block_losses

    p = torch.tensor([[0.9, 0.2, 0.7]])  # (B=1, J=3); joint 2 unannotated
    out = PoseOutput(pose=[torch.full((1, 3, 2), 0.5)], visibility=[p], heatmaps=[None])
    batch = {"pose": torch.full((1, 3, 3), 0.5), "pose_valid": torch.ones(1, 3, 3, dtype=bool),
             "visible": torch.tensor([[1.0, 0.0, 0.0]]),
             "pose_px_valid": torch.tensor([[True, True, False]])}  # fmt: skip
    annotated = (-math.log(0.9) - math.log(0.8)) / 2
    every = (-math.log(0.9) - math.log(0.8) - math.log(0.3)) / 3
    for joints, expected, keras in (("annotated", annotated, False), ("all", every, False),
                                    ("all", every, True)):  # fmt: skip
        vis = pose_block_losses(out, batch, 0.01, "l1l2", joints, keras)[2]
        assert vis.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="loss.visibility_joints"):
        pose_block_losses(out, batch, 0.01, "l1l2", "visible")


def test_action_loss_label_smoothing_mixes_uniform_targets_and_ignores_missing_labels():
    out = _action_output()
    labels, eps, a = torch.tensor([1, -1, 3, 0]), 0.1, 5
    expected = 0.0
    for z in out.all_logits:
        logp = z.detach().log_softmax(-1)[[0, 2, 3]]
        target = torch.full((3, a), eps / a)
        target[torch.arange(3), torch.tensor([1, 3, 0])] += 1 - eps
        expected += -(target * logp).sum(-1).mean().item()
    assert action_loss(out, labels, label_smoothing=eps).item() == pytest.approx(expected, rel=1e-6)


def test_action_loss_of_an_ensemble_is_the_mean_of_its_members_own_losses():
    """Each member is trained by its own logits (not by the ensemble's mean): the loss is the
    mean over the M members of the loss each would have alone, labels −1 ignored."""
    torch.manual_seed(0)
    members = [torch.randn(3, 4, 6, requires_grad=True) for _ in range(2)]  # 2 blocks, M = 3
    labels = torch.tensor([1, -1, 5, 0])
    out = ActionOutput([z.mean(0) for z in members], [], None, pose_members=members)
    alone = [action_loss(ActionOutput([z[k] for z in members], [], None), labels) for k in range(3)]
    torch.testing.assert_close(action_loss(out, labels), torch.stack(alone).mean())
    action_loss(out, labels).backward()
    assert all(z.grad[:, 1].abs().sum() == 0 for z in members)  # the unlabelled sample
