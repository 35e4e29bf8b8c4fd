"""The channel-width multiplier (``NetworkConfig.width``): every channel count of the stem, the
pose blocks and the action branches scales, the output channels (heat maps, actions) do not, and
the converter refuses anything but the official width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deephar.config import NTU_MERGE, NetworkConfig, scale_channels
from deephar.convert import keras_state_dict
from deephar.models.multitask import build_model
from deephar.models.stem import STEM_CHANNELS, Stem

UNSCALED = ("regmap", "action_maps", "aggregation")  # outputs: N_h heat maps, A actions


def _convs(net: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: m for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}


def test_scale_channels():
    assert scale_channels(576, 1.0) == 576
    assert scale_channels(576, 0.25) == 144
    assert scale_channels(8, 0.25) == 8  # never below 8
    with pytest.raises(ValueError, match="width"):
        scale_channels(64, 0.0)


def test_width_one_is_the_default_network():
    cfg = NTU_MERGE.with_(input_size=64, num_frames=4)
    official, same = build_model(cfg), build_model(cfg.with_(width=1.0))
    shapes = {k: v.shape for k, v in official.state_dict().items()}
    assert shapes == {k: v.shape for k, v in same.state_dict().items()}


@pytest.mark.parametrize("width", [0.25, 0.5])
def test_every_inner_channel_count_scales(width):
    cfg = NTU_MERGE.with_(input_size=64, num_frames=4, pose_blocks=2)
    full, small = _convs(build_model(cfg)), _convs(build_model(cfg.with_(width=width)))
    assert full.keys() == small.keys()
    for name, conv in full.items():
        if any(part in name for part in UNSCALED):
            continue
        assert small[name].out_channels == scale_channels(conv.out_channels, width), name


def test_small_network_runs_pose_and_clips():
    cfg = NetworkConfig(input_size=64, num_joints=8, dim=3, depth_maps=4, context_maps=0,
                        pose_blocks=2, num_actions=5, num_frames=4, pose_branch="v2", width=0.25)  # fmt: skip
    net = build_model(cfg).eval()
    assert Stem(0.25).out_channels == scale_channels(STEM_CHANNELS, 0.25)
    with torch.no_grad():
        pose = net(torch.zeros(2, 3, 64, 64))
        clip = net(torch.zeros(1, 4, 3, 64, 64))
    assert pose.final.shape == (2, 8, 3) and pose.features.shape[1] == 144
    assert clip.aggregate.shape == (1, 5)
    full = sum(p.numel() for p in build_model(cfg.with_(width=1.0)).parameters())
    assert sum(p.numel() for p in net.parameters()) < full / 8


def test_converter_refuses_other_widths(tmp_path):
    cfg = NetworkConfig(input_size=64, pose_blocks=1, width=0.5)
    with pytest.raises(ValueError, match="width"):
        keras_state_dict(build_model(cfg), tmp_path / "weights.h5")
