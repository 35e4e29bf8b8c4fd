"""The per-stage bf16 probe of ``benchmarks.export_accuracy``: one stage in bf16, the rest fp32."""

from __future__ import annotations

import torch

from benchmarks.export_accuracy import one_stage_bf16
from deephar.config import MPII_2D
from deephar.models.pose import PoseNet


def test_one_stage_bf16_is_eager_outside_the_stage_and_bf16_inside():
    torch.manual_seed(0)
    net = PoseNet(MPII_2D.with_(pose_blocks=2, input_size=32, width=0.25)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        reference = net(images).pose[-1][..., :2]
        assert torch.equal(one_stage_bf16(net, images, stage=-1), reference)
        for stage in range(3):  # stem, block 1, block 2
            pose = one_stage_bf16(net, images, stage)
            assert pose.shape == reference.shape and pose.dtype == torch.float32
            assert 0 < (pose - reference).abs().max() < 0.05
