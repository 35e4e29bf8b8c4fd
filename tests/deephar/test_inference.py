"""Inference rewrites keep the network's outputs (BN folded, channels_last)."""

import torch

from deephar.config import NetworkConfig
from deephar.models.inference import prepare_for_inference
from deephar.models.pose import PoseNet


def _randomise_bn(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def test_folded_model_gives_the_same_pose_and_heatmaps():
    torch.manual_seed(0)
    for cfg in (
        NetworkConfig(input_size=64, pose_blocks=2),
        NetworkConfig(
            input_size=64, pose_blocks=2, num_joints=17, dim=3, depth_maps=4, context_maps=0
        ),
    ):
        model = PoseNet(cfg).eval()
        _randomise_bn(model)
        fast = prepare_for_inference(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
        x = torch.randn(2, 3, 64, 64)
        with torch.inference_mode():
            ref, out = model(x), fast(x.contiguous(memory_format=torch.channels_last))
        for a, b in zip(ref.pose + ref.heatmaps, out.pose + out.heatmaps):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_original_model_is_untouched():
    model = PoseNet(NetworkConfig(input_size=64, pose_blocks=1)).eval()
    prepare_for_inference(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
