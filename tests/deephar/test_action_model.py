"""Action part of the network and the whole multitask model: shapes, sizes, gradient paths."""

from __future__ import annotations

import json

import pytest
import torch

from deephar.config import NTU_MERGE, PENN_MERGE
from deephar.convert.keras_h5 import KerasWeightFile
from deephar.models.action import (
    Aggregation,
    appearance_features,
    global_max_min_pool,
    max_min_pool_same,
)
from deephar.models.action_head import ActionHead
from deephar.models.multitask import build_model, joint_probability

CONSTANT_GROUPS = ("sSAM", "cSAM", "zSAM", "Agg")  # frozen Keras constants we compute instead


def n_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# Small clips: 64×64 frames give 8×8 heat maps; T = 4 frames.
SMALL = {
    "penn": PENN_MERGE.with_(pose_blocks=2, num_frames=4),
    "ntu": NTU_MERGE.with_(pose_blocks=1, num_frames=4),
}


@pytest.fixture(scope="module", params=["penn", "ntu"])
def small_model(request):
    torch.manual_seed(0)
    return build_model(SMALL[request.param]).eval()


@pytest.mark.parametrize(
    ("dim", "actions", "version", "joints", "frames"),
    [(2, 15, "v1", 16, 8), (3, 60, "v2", 20, 4), (2, 5, "v1", 12, 8)],
)
def test_action_head_shapes(dim, actions, version, joints, frames):
    head = ActionHead(dim, actions, 32, version).eval()
    pose, prob = torch.rand(2, frames, joints, dim), torch.rand(2, frames, joints)
    feats = torch.rand(2, frames, joints, 32)
    pose_out = head.pose_branch(pose, prob)
    assert [m.shape for m in pose_out.maps] == [(2, actions, frames // 4, joints // 4)] * 4
    assert [z.shape for z in pose_out.member_logits] == [(1, 2, actions)] * 4
    out = head(pose, prob, feats)
    assert len(out.pose_branch) == len(out.appearance_branch) == 4 and out.pose_members is None
    assert all(t.shape == (2, actions) for t in out.all_logits)


def test_pose_ensemble_averages_independent_members():
    """model.pose_members = M: members 2…M differ from member 1 (keys: test_pose_ensemble.py), the
    prediction of each block is the mean of the members' logits, and the aggregation reads the
    members' mean maps."""
    torch.manual_seed(0)
    ensemble = ActionHead(2, 5, 16, "v1", pose_members=3).eval()
    members = ensemble.pose_branch.members
    first = members[0].temporal[0].conv.weight
    assert not torch.equal(first, members[1].temporal[0].conv.weight)
    pose, prob, feats = torch.rand(2, 8, 16, 2), torch.rand(2, 8, 16), torch.rand(2, 8, 16, 16)
    out = ensemble(pose, prob, feats)
    assert [z.shape for z in out.pose_members] == [(3, 2, 5)] * 4
    runs = [member(pose, prob)[-1] for member in members]
    for k, maps in enumerate(runs):
        torch.testing.assert_close(out.pose_members[-1][k], global_max_min_pool(maps))
    torch.testing.assert_close(out.pose_branch[-1], out.pose_members[-1].mean(0))
    mean_maps = torch.stack(runs).mean(0)
    appearance = ensemble.appearance_branch(feats)[-1]
    torch.testing.assert_close(out.aggregate, ensemble.aggregation(mean_maps, appearance))


def test_clip_size_must_allow_two_poolings():
    head = ActionHead(2, 5, 8, "v1")
    with pytest.raises(ValueError, match="multiples of 4"):
        head(torch.rand(1, 6, 16, 2), torch.rand(1, 6, 16), torch.rand(1, 6, 16, 8))


def test_max_min_pooling_same_padding():
    x = torch.arange(15.0).view(1, 1, 3, 5)
    y = max_min_pool_same(x)  # windows [0:2, 0:2], …, the last column / row alone ('same')
    assert y.shape == (1, 1, 2, 3)
    assert y[0, 0, 0].tolist() == [6 + 0, 8 + 2, 9 + 4]
    assert y[0, 0, 1].tolist() == [11 + 10, 13 + 12, 14 + 14]
    assert global_max_min_pool(x).tolist() == [[14.0]]


def test_aggregation_starts_as_plain_sum():
    agg = Aggregation(7)
    p, v = torch.randn(3, 7, 4, 4), torch.randn(3, 7, 4, 4)
    torch.testing.assert_close(agg(p, v), global_max_min_pool(p + v))


def test_appearance_features_weighted_sum():
    b, t, j, c, h, w = 2, 3, 4, 5, 6, 7
    feats, logits = torch.randn(b * t, c, h, w), torch.randn(b * t, j, h, w)
    prob = torch.softmax(logits.flatten(2), -1).view_as(logits)
    f = appearance_features(feats, prob, t)
    assert f.shape == (b, t, j, c)
    n, jj = 4, 2  # frame 4 = (b=1, t=1)
    ref = (prob[n, jj, None] * feats[n]).sum(dim=(-2, -1))
    torch.testing.assert_close(f[1, 1, jj], ref)


@pytest.mark.parametrize(
    ("cfg", "pose_branch", "appearance", "merge"),
    [(PENN_MERGE, 852_864, 4_062_976, 480), (NTU_MERGE, 3_803_920, 4_788_736, 7_320)],
)
def test_official_parameter_counts(cfg, pose_branch, appearance, merge):
    model = build_model(cfg)
    model.freeze_pose(True)
    assert n_params(model.action.pose_branch) == pose_branch
    assert n_params(model.action.appearance_branch) == appearance
    assert n_params(model.action.aggregation) == merge
    assert n_params(model, trainable_only=True) == pose_branch + appearance + merge


@pytest.mark.parametrize("name", ["penn_merge_k2_t8", "ntu_merge_k2_t8"])
def test_fixture_parameter_totals(parity_dir, name):
    """Keras counts BN moving statistics and the frozen soft-argmax constants as weights."""
    info = json.loads((parity_dir / f"{name}.json").read_text())
    cfg = {"penn": PENN_MERGE, "ntu": NTU_MERGE}[name.split("_")[0]]
    model = build_model(cfg.with_(pose_blocks=info["num_blocks"], num_frames=info["num_frames"]))
    model.freeze_pose(True)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    with KerasWeightFile(parity_dir / f"{name}.h5") as f:
        groups = [g for g in CONSTANT_GROUPS if g in f.layer_names]
        consts = sum(
            w.size for g in groups for layer in f.layers(g) for w in layer.weights.values()
        )
    assert n_params(model, trainable_only=True) == info["trainable"]
    assert n_params(model) + stats + consts == info["total"]


def test_backbone_is_shared_and_stored_once(small_model):
    assert small_model.backbone is small_model.pose.stem
    sd = small_model.state_dict()
    assert not any(k.startswith("backbone.") for k in sd)
    ptrs = [t.data_ptr() for t in sd.values() if t.numel() > 0]
    assert len(ptrs) == len(set(ptrs))


def test_forward_clip_shapes(small_model):
    cfg = small_model.cfg
    b, t = 2, cfg.num_frames
    with torch.no_grad():
        out = small_model.forward_clip(torch.randn(b, t, 3, 64, 64))
    assert len(out.pose_branch) == len(out.appearance_branch) == cfg.action_blocks
    assert all(x.shape == (b, cfg.num_actions) for x in out.all_logits)
    assert out.poses.pose[-1].shape == (b, t, cfg.num_joints, cfg.dim)
    assert out.poses.visibility[-1].shape == (b, t, cfg.num_joints)
    assert out.poses.heatmaps[-1].shape == (b, t, cfg.num_joints, 8, 8)
    assert out.poses.features.shape == (b, t, 576, 8, 8)


def test_forward_action_from_poses_needs_no_images(small_model):
    cfg = small_model.cfg
    pose = torch.rand(3, cfg.num_frames, cfg.num_joints, cfg.dim)
    prob = (torch.rand(3, cfg.num_frames, cfg.num_joints) > 0.3).float()
    out = small_model.forward_action_from_poses(pose, prob)
    assert out.appearance_branch == [] and out.aggregate is None and out.poses is None
    assert [x.shape for x in out.all_logits] == [(3, cfg.num_actions)] * cfg.action_blocks
    assert out.final is out.pose_branch[-1]


def test_joint_probability_formulas():
    h = torch.randn(2, 3 * 4, 5, 5)  # 2D: 4 joints + 8 context maps
    expected = torch.sigmoid(4 * h[:, :4].flatten(2).max(-1).values)
    torch.testing.assert_close(joint_probability(h, 4, 2), expected)
    h3 = torch.randn(2, 3 * 4, 5, 5)  # 3D: Nd = 3 bins × 4 joints, channel d·J + j
    v = h3.view(2, 3, 4, 5, 5)
    score = v.mean(1).flatten(2).max(-1).values + v.mean((-2, -1)).max(1).values
    torch.testing.assert_close(joint_probability(h3, 4, 3), torch.sigmoid(2 * score))


def _grad_of(model, clips, pick) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    out = model.forward_clip(clips)
    pick(out).square().sum().backward()
    last = model.pose.blocks[-1]
    return {
        "stem": model.backbone.conv1.conv.weight.grad,
        "regmap": last.regmap.conv.weight.grad,
        "action": model.action.pose_branch.members[0].temporal[0].conv.weight.grad,
    }


def test_action_loss_reaches_stem_only_when_unfrozen():
    torch.manual_seed(0)
    model = build_model(SMALL["penn"]).train()
    clips = torch.randn(1, 4, 3, 64, 64)
    pose_only = lambda out: torch.stack(out.pose_branch)  # noqa: E731  soft-argmax + probability
    appearance_only = lambda out: torch.stack(out.appearance_branch)  # noqa: E731

    grads = _grad_of(model, clips, pose_only)
    assert grads["stem"] is not None and grads["stem"].abs().sum() > 0
    # The last RegMap comes after the appearance features: reached only through the prob. maps.
    grads = _grad_of(model, clips, appearance_only)
    assert grads["regmap"] is not None and grads["regmap"].abs().sum() > 0

    model.freeze_pose(True)
    model.train()
    assert not model.pose.training and model.action.training
    grads = _grad_of(model, clips, lambda out: torch.stack(out.all_logits))
    assert grads["stem"] is None and grads["regmap"] is None
    assert grads["action"] is not None and grads["action"].abs().sum() > 0


def test_pose_ensemble_runs_the_same_through_the_inference_copy():
    """``for_inference`` (BN folded, what evaluate / predict run) scores an ensemble as the
    eager network does."""
    from deephar.models.inference import for_inference

    torch.manual_seed(0)
    net = build_model(SMALL["penn"].with_(pose_members=2, width=0.25)).eval()
    pose, prob = torch.rand(2, 4, 16, 2), torch.rand(2, 4, 16)
    with torch.no_grad():
        eager = net.forward_action_from_poses(pose, prob)
        fast = for_inference(net, precision="fp32", verbose=False).forward_action_from_poses(
            pose, prob
        )
    torch.testing.assert_close(fast.final, eager.final, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.pose_members[-1], eager.pose_members[-1], atol=1e-4, rtol=1e-4)
