"""Pose network: shapes (small inputs), exact parameter counts of the official models."""

from __future__ import annotations

import json

import pytest
import torch

from deephar.config import H36M_3D, MPII_2D, NTU_MERGE, PENN_MERGE
from deephar.models.pose import PoseNet, ReceptionBlock
from deephar.models.stem import Stem
from deephar.models.summary import keras_counts


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_stem_and_reception_counts():
    with torch.device("meta"):
        assert _params(Stem()) == 1_035_456
        assert _params(ReceptionBlock(576, 5)) == 1_305_216


@pytest.mark.parametrize(
    ("cfg", "trainable", "total"),
    [
        (MPII_2D, 14_669_952, 14_847_936),
        (H36M_3D, 16_605_312, 16_721_938),
        (PENN_MERGE, 7_838_592, None),
        (NTU_MERGE, 8_290_176, None),
    ],
)
def test_official_counts(cfg, trainable, total):
    with torch.device("meta"):
        net = PoseNet(cfg)
    ours_trainable, ours_total = keras_counts(net, cfg)
    assert ours_trainable == trainable
    if total is not None:
        assert ours_total == total


@pytest.mark.parametrize("name", ["mpii_2d_k2", "h36m_3d_k2"])
def test_fixture_counts(parity_dir, name):
    meta = json.loads((parity_dir / f"{name}.json").read_text())
    base = MPII_2D if meta["dim"] == 2 else H36M_3D
    cfg = base.with_(pose_blocks=meta["num_blocks"], num_joints=meta["num_joints"])
    with torch.device("meta"):
        net = PoseNet(cfg)
    assert keras_counts(net, cfg) == (meta["trainable"], meta["total"])


def test_2d_shapes_small_input():
    cfg = MPII_2D.with_(pose_blocks=2, input_size=64)
    out = PoseNet(cfg).eval()(torch.randn(2, 3, 64, 64))
    assert len(out.pose) == len(out.visibility) == len(out.heatmaps) == len(out.logits) == 2
    assert out.pose[0].shape == (2, 16, 2) and out.visibility[1].shape == (2, 16)
    assert out.heatmaps[0].shape == (2, 16, 8, 8) and out.logits[0].shape == (2, 48, 8, 8)
    assert out.features.shape == (2, 576, 8, 8)
    assert ((out.pose[1] >= 0) & (out.pose[1] <= 1)).all()


def test_3d_shapes():
    cfg = H36M_3D.with_(pose_blocks=2, num_joints=5, depth_maps=4)
    with torch.no_grad():
        out = PoseNet(cfg).eval()(torch.randn(3, 3, 64, 64))
    assert out.pose[-1].shape == (3, 5, 3) and out.logits[-1].shape == (3, 20, 8, 8)
    assert out.features.shape == (3, 576, 8, 8)


def test_shared_stem():
    stem = Stem()
    a, b = PoseNet(MPII_2D.with_(pose_blocks=1), stem), PoseNet(H36M_3D.with_(pose_blocks=1), stem)
    assert a.stem is b.stem


def test_gradients_reach_the_stem():
    net = PoseNet(MPII_2D.with_(pose_blocks=2, input_size=64))
    out = net(torch.randn(1, 3, 64, 64))
    (out.pose[0].sum() + out.pose[1].sum() + out.visibility[1].sum()).backward()
    assert net.stem.conv1.conv.weight.grad.abs().sum() > 0
    assert net.blocks[0].fremap.conv.weight.grad.abs().sum() > 0
