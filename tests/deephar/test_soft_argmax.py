"""Soft-argmax decoding: peaks, equivariance, gradients, visibility, context aggregation, 3D."""

from __future__ import annotations

import torch

from deephar.soft_argmax import (
    context_aggregation,
    decode_2d,
    decode_3d,
    soft_argmax_1d,
    soft_argmax_2d,
    spatial_softmax,
    split_volumetric,
    visibility,
)


def _peak(h: int, w: int, row: int, col: int, height: float = 50.0) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w)
    m[0, 0, row, col] = height
    return m


def test_sharp_peak_2d_lands_on_its_cell():
    xy = soft_argmax_2d(_peak(32, 16, row=20, col=3))
    torch.testing.assert_close(xy[0, 0], torch.tensor([3 / 15, 20 / 31]), atol=1e-5, rtol=0)


def test_sharp_peak_1d_lands_on_its_bin():
    hz = torch.zeros(1, 2, 16)
    hz[0, 0, 5] = hz[0, 1, 15] = 60.0
    torch.testing.assert_close(soft_argmax_1d(hz), torch.tensor([[5 / 15, 1.0]]), atol=1e-5, rtol=0)


def test_translation_equivariance():
    torch.manual_seed(0)
    base = torch.zeros(1, 1, 32, 32)
    base[..., 8:14, 6:12] = torch.randn(6, 6) * 3
    shifted = torch.roll(base, shifts=(5, 7), dims=(-2, -1))
    # the background (zeros) is identical, so only a strong blob keeps the shift exact
    a, b = soft_argmax_2d(base * 10), soft_argmax_2d(shifted * 10)
    torch.testing.assert_close(b - a, torch.tensor([[[7 / 31, 5 / 31]]]), atol=1e-4, rtol=0)


def test_uniform_map_gives_centre_and_softmax_sums_to_one():
    h = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(spatial_softmax(h).sum(dim=(-2, -1)), torch.ones(2, 3))
    torch.testing.assert_close(soft_argmax_2d(torch.zeros(1, 1, 8, 8)), torch.full((1, 1, 2), 0.5))


def test_gradients_flow():
    h = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(soft_argmax_2d, (h,))
    hz = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(soft_argmax_1d, (hz,))


def test_visibility_is_sigmoid_of_max():
    h = torch.randn(2, 4, 8, 8) - 1.0  # maxima in a range where float32 sigmoid is not saturated
    v = visibility(h)
    assert ((v > 0) & (v < 1)).all()
    torch.testing.assert_close(v, torch.sigmoid(h.flatten(-2).max(-1).values))


def test_context_aggregation_weighted_mean():
    ys = torch.tensor([[[0.5, 0.5]]])
    yc = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])  # two context estimates of joint 0
    pc = torch.tensor([[3.0, 1.0]])
    ctx = (3 * yc[0, 0] + 1 * yc[0, 1]) / 4
    expected = 0.8 * ys + 0.2 * ctx
    torch.testing.assert_close(context_aggregation(ys, yc, pc), expected)


def test_decode_2d_uses_joint_channels_and_context_order():
    j, c = 2, 2
    h = torch.zeros(1, j * (1 + c), 16, 16)
    h[0, 0, 4, 4] = h[0, 1, 10, 12] = 60.0  # joints
    h[0, j + 1 * c + 0, 0, 0] = 60.0  # context 0 of joint 1 at (0, 0)
    h[0, j + 1 * c + 1, 0, 0] = 60.0  # context 1 of joint 1 at (0, 0)
    pose, vis, hs = decode_2d(h, j)
    assert hs.shape == (1, j, 16, 16) and vis.shape == (1, j)
    torch.testing.assert_close(
        pose[0, 1], 0.8 * torch.tensor([12 / 15, 10 / 15]), atol=1e-4, rtol=0
    )


def test_decode_3d_channel_layout():
    j, nd = 3, 4
    v = torch.zeros(1, nd, j, 8, 8)  # (B, Nd, J, H, W): channel d·J + j
    v[0, 2, 1, 6, 1] = 80.0  # joint 1 at depth bin 2, row 6, col 1
    h = v.flatten(1, 2)
    hxy, hz = split_volumetric(h, j)
    assert hxy.shape == (1, j, 8, 8) and hz.shape == (1, j, nd)
    pose, vis, _ = decode_3d(h * 8, j)
    torch.testing.assert_close(pose[0, 1], torch.tensor([1 / 7, 6 / 7, 2 / 3]), atol=1e-3, rtol=0)
    torch.testing.assert_close(vis, torch.sigmoid(hxy.amax((-2, -1)) * 8 + hz.amax(-1) * 8))


def test_soft_argmax_of_bf16_logits_decodes_in_fp32():
    """bf16 logits (autocast's conv output) decode on float32 grids and probabilities."""
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 16, 64, 64, generator=g) * 4).bfloat16()
    depth = (torch.randn(2, 16, 16, generator=g) * 4).bfloat16()
    xy, z = soft_argmax_2d(logits), soft_argmax_1d(depth)
    assert xy.dtype == z.dtype == torch.float32
    assert (xy - soft_argmax_2d(logits.float())).abs().max() < 1e-5
    assert (z - soft_argmax_1d(depth.float())).abs().max() < 1e-5
