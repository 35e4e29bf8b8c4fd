"""benchmarks.roofline: a training step's FLOP count (grouped convolutions counted right) and the
bounds a measured peak sets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.roofline import Peak, StepFlops, step_flops, summary


@pytest.mark.parametrize(("cin", "groups", "kernel"), [(6, 6, 5), (6, 1, 3), (6, 2, 1)])
def test_convolution_step_counts_each_gradient_as_its_forward(cin, groups, kernel):
    """PyTorch's own formula counts a depthwise weight gradient C× too high (fails with it)."""
    x = torch.randn(2, cin, 9, 9, requires_grad=True)
    w = torch.randn(4 * groups, cin // groups, kernel, kernel, requires_grad=True)

    def step():
        F.conv2d(x, w, padding=kernel // 2, groups=groups).sum().backward()

    forward = 2 * 2 * 9 * 9 * w.numel()
    assert step_flops(step, 2) == StepFlops(forward, 2 * forward, 2)


def test_summary_gives_bounds_and_the_goal_share_of_peak():
    flops = StepFlops(forward=10e9, backward=20e9, batch=2)  # 15 GFLOP per image
    text = summary(flops, Peak(fp32=100.0, bf16=300.0, threads=2), keras_ms=500.0, target=0.5)
    assert "15.0 GFLOP per image" in text
    assert "150 ms/image in fp32 or 50 in bf16" in text
    assert "Keras' step runs at 30 GFLOP/s" in text
    assert "needs 60 GFLOP/s sustained, 60 % of the fp32 peak, 20 % of the bf16 peak" in text
