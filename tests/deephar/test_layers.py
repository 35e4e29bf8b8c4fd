"""Layers in the official Keras conventions: TF-'same' padding, BN without scale, block orders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deephar.layers import (
    BatchNorm2d,
    Conv2d,
    SeparableConv2d,
    act_conv_bn,
    conv_bn,
    conv_bn_act,
    max_pool_same,
    same_padding,
    upsample,
)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [(8, 3, 2, (0, 1)), (7, 3, 2, (1, 1)), (8, 5, 1, (2, 2)), (8, 2, 2, (0, 0)), (8, 1, 1, (0, 0))],
)
def test_same_padding_matches_tf_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_stride2_conv_pads_bottom_right():
    torch.manual_seed(0)
    conv = Conv2d(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 8, 8)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    sym = F.conv2d(x, conv.weight, stride=2, padding=1)
    assert conv.bias is None
    torch.testing.assert_close(conv(x), ref)
    assert not torch.allclose(conv(x), sym)


def test_rectangular_kernel_keeps_size():
    assert Conv2d(4, 4, (5, 1))(torch.randn(1, 4, 9, 6)).shape == (1, 4, 9, 6)
    assert Conv2d(4, 4, (1, 5))(torch.randn(1, 4, 9, 6)).shape == (1, 4, 9, 6)


def test_batchnorm_has_beta_only_and_keras_constants():
    bn = BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["bias"]
    assert bn.eps == 1e-3 and bn.momentum == pytest.approx(0.01)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 4, 3, 3)
    expected = (x - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + 1e-3
    ) + bn.bias[:, None, None]
    torch.testing.assert_close(bn.eval()(x), expected)


def test_separable_conv_parameters():
    sep = SeparableConv2d(6, 10, 5)
    assert sum(p.numel() for p in sep.parameters()) == 5 * 5 * 6 + 6 * 10
    assert sep(torch.randn(1, 6, 7, 7)).shape == (1, 10, 7, 7)


def test_block_orders():
    torch.manual_seed(0)
    x = -torch.rand(1, 2, 5, 5) - 0.1  # all negative: a leading ReLU zeroes the input
    pre = act_conv_bn(2, 3, 3).eval()
    pre.bn.bias.data.fill_(0.5)
    torch.testing.assert_close(pre(x), torch.full((1, 3, 5, 5), 0.5))
    post = conv_bn_act(2, 3, 3).eval()
    assert post(x).min() >= 0
    plain = conv_bn(2, 3, 3).eval()
    plain.bn.bias.data.fill_(-10.0)
    assert plain(x).max() < 0


def test_max_pool_same_pads_with_minus_infinity():
    x = -torch.arange(1.0, 17.0).view(1, 1, 4, 4)  # all negative
    y = max_pool_same(x, 3, 2)
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0, 1, 1] == x[0, 0, 2:, 2:].max()  # zero padding would give 0


def test_upsample_repeats_each_pixel():
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    up = upsample(x)
    assert up.shape == (1, 1, 4, 4) and torch.equal(up[..., ::2, ::2], x)
    assert torch.equal(up[..., 1::2, 1::2], x)
