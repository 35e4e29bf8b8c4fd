"""benchmarks.bench_depthwise: the formulations it times compute the same weight gradient."""

from __future__ import annotations

import torch

from benchmarks import bench_depthwise
from deephar import depthwise


def test_alternative_formulations_equal_the_onednn_fp32_gradient():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 7, 7).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    exact = depthwise._aten_fp32(x, grad, torch.randn(6, 1, 5, 5), (2, 2))
    alternatives = (bench_depthwise.per_sample_taps, bench_depthwise.unfold_bmm)
    for fn in (*alternatives, bench_depthwise.einsum_view):
        torch.testing.assert_close(fn(x, grad), exact, rtol=1e-5, atol=1e-5)
    taps = depthwise.tap_sums(x, grad, (5, 5), (2, 2))
    torch.testing.assert_close(taps, exact, rtol=1e-5, atol=1e-5)


def test_layer_backward_runs_in_every_mode():
    for how in depthwise.MODES:
        bench_depthwise.layer_backward(8, 6, torch.bfloat16, how)()
