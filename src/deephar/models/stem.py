"""Entry flow (Inception-V4-style stem) and the separable residual module (SPEC.md, "Entry flow").

The stem is THE backbone object: the pose network and the appearance branch share it.
Module attribute names follow the official Keras layer names where those exist (``sepconv1``,
``shortcut``, ``reduce``); they are the state-dict keys the converter fills.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deephar.config import scale_channels
from deephar.layers import (
    act_conv_bn,
    act_sepconv_bn,
    conv_bn,
    conv_bn_act,
    max_pool,
    max_pool_same,
)

STEM_CHANNELS = 576  # 3·192, channels of the stem output and of every prediction block


class SeparableResidual(nn.Module):
    """SR module: shortcut (identity, or act_conv_bn 1×1 when channels change) + main path
    [act_conv_bn 1×1 reduction when out < in] → ReLU → SeparableConv k×k → BN.

    (B, Cin, H, W) → (B, Cout, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.shortcut = (
            act_conv_bn(in_channels, out_channels, 1) if in_channels != out_channels else None
        )
        self.reduce = (
            act_conv_bn(in_channels, out_channels, 1) if out_channels < in_channels else None
        )
        self.sepconv = act_sepconv_bn(
            out_channels if self.reduce else in_channels, out_channels, kernel_size
        )

    def forward(self, x: Tensor) -> Tensor:
        ident = x if self.shortcut is None else self.shortcut(x)
        if self.reduce is not None:
            x = self.reduce(x)
        return ident + self.sepconv(x)


class Stem(nn.Module):
    """(B, 3, 256, 256) in [−1, 1] → (B, 576, 32, 32): conv_bn_act ×3 (first stride 2), three
    mixed blocks (each a concatenation), then an SR module to 576 channels with a 3×3 kernel.

    ``width`` scales every channel count (``deephar.config.scale_channels``; 1.0: official), the
    output then has ``out_channels`` = 576·width channels.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c32, c64, c96, c192 = (scale_channels(n, width) for n in (32, 64, 96, 192))
        self.out_channels = scale_channels(STEM_CHANNELS, width)
        self.conv1 = conv_bn_act(3, c32, 3, stride=2)
        self.conv2 = conv_bn_act(c32, c32, 3)
        self.conv3 = conv_bn_act(c32, c64, 3)
        self.mixed1 = conv_bn_act(c64, c96, 3, stride=2)  # ‖ MaxPool 3×3/2 'same' → 160 ch
        self.mixed2_a1 = conv_bn_act(c96 + c64, c64, 1)
        self.mixed2_a2 = conv_bn(c64, c96, 3)
        self.mixed2_b1 = conv_bn_act(c96 + c64, c64, 1)
        self.mixed2_b2 = conv_bn_act(c64, c64, (5, 1))
        self.mixed2_b3 = conv_bn_act(c64, c64, (1, 5))
        self.mixed2_b4 = conv_bn(c64, c96, 3)  # a ‖ b → 192 ch
        self.mixed3 = act_conv_bn(2 * c96, c192, 3, stride=2)  # ‖ MaxPool 2×2/2 → 384 ch
        self.sepconv1 = SeparableResidual(c192 + 2 * c96, self.out_channels, kernel_size=3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3(self.conv2(self.conv1(x)))  # (B, 64, H/2, W/2)
        x = torch.cat([self.mixed1(x), max_pool_same(x, 3, 2)], dim=1)  # (B, 160, H/4, W/4)
        a = self.mixed2_a2(self.mixed2_a1(x))
        b = self.mixed2_b4(self.mixed2_b3(self.mixed2_b2(self.mixed2_b1(x))))
        x = torch.cat([a, b], dim=1)  # (B, 192, H/4, W/4)
        x = torch.cat([self.mixed3(x), max_pool(x, 2)], dim=1)  # (B, 384, H/8, W/8)
        return self.sepconv1(x)  # (B, 576, H/8, W/8)
