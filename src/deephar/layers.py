"""Building blocks in the conventions of the official Keras network (SPEC.md, "Conventions").

- Convolutions have no bias and TF-'same' padding (stride 2: the extra row/column goes
  bottom/right).
- BatchNorm has no scale (γ ≡ 1, only β is learned), Keras epsilon 1e-3 and momentum 0.99
  (PyTorch momentum 0.01).
- Orders: ``conv_bn_act`` = Conv→BN→ReLU, ``conv_bn`` = Conv→BN, ``act_conv_bn`` = ReLU→Conv→BN.

Tensors are NCHW: B batch, C channels, H×W spatial size.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from deephar import depthwise

BN_EPS = 1e-3  # Keras BatchNormalization default
BN_MOMENTUM = 0.01  # = 1 − Keras momentum 0.99

Size2 = int | tuple[int, int]


def _pair(v: Size2) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) of one axis of length ``size``; the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: Size2, stride: Size2, value: float = 0.0) -> Tensor:
    """Pad (B, C, H, W) as TF 'same' would for ``kernel``/``stride`` (asymmetric when needed)."""
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    top, bottom = same_padding(x.shape[-2], kh, sh)
    left, right = same_padding(x.shape[-1], kw, sw)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class Conv2d(nn.Conv2d):
    """Conv2d without bias and with TF-'same' padding (Keras ``Conv2D(use_bias=False)``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2,
        stride: Size2 = 1,
        groups: int = 1,
    ) -> None:
        kh, kw = _pair(kernel_size)
        self._symmetric = _pair(stride) == (1, 1) and kh % 2 == 1 and kw % 2 == 1
        padding = (kh // 2, kw // 2) if self._symmetric else 0
        super().__init__(
            in_channels, out_channels, (kh, kw), _pair(stride), padding, groups=groups, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self._symmetric:
            x = pad_same(x, self.kernel_size, self.stride)
        return super().forward(x)


class DepthwiseConv2d(Conv2d):
    """Depthwise ``Conv2d`` (multiplier 1). In CPU training with channels_last input its weight
    gradient runs by ``deephar.depthwise`` (oneDNN's is the slow path there); the forward, the
    input gradient and every other case are ``Conv2d``'s."""

    def __init__(self, channels: int, kernel_size: Size2, stride: Size2 = 1) -> None:
        super().__init__(channels, channels, kernel_size, stride, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        if self._symmetric and depthwise.applies(x, self.weight, self.stride, self.padding):
            return depthwise.depthwise_conv2d(x, self.weight, self.padding)
        return super().forward(x)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D(use_bias=False)``: depthwise k×k (multiplier 1), then 1×1 pointwise."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Size2, stride: Size2 = 1
    ) -> None:
        super().__init__()
        self.depthwise = DepthwiseConv2d(in_channels, kernel_size, stride)
        self.pointwise = Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class BatchNorm2d(nn.BatchNorm2d):
    """Keras ``BatchNormalization(scale=False)``: only β (``bias``) is learned, γ ≡ 1.

    State-dict keys: ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``.
    ``affine`` with ``weight = None`` (``F.batch_norm`` reads γ ≡ 1): so that
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` carries the bias over (it copies the affine
    parameters only when ``affine``; an ``affine=False`` BN with a bias of its own lost it).
    """

    def __init__(self, num_features: int, eps: float = BN_EPS, momentum: float = BN_MOMENTUM):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=True)
        self.weight = None  # type: ignore[assignment]

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class ConvBN(nn.Module):
    """Conv (plain or separable) → BN with an optional ReLU before (``act_conv_bn``) or after
    (``conv_bn_act``). Attributes ``conv`` and ``bn`` name the state-dict keys."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2,
        stride: Size2 = 1,
        relu_before: bool = False,
        relu_after: bool = False,
        separable: bool = False,
    ) -> None:
        super().__init__()
        conv = SeparableConv2d if separable else Conv2d
        self.relu_before, self.relu_after = relu_before, relu_after
        self.conv = conv(in_channels, out_channels, kernel_size, stride)
        self.bn = BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.relu_before:
            x = F.relu(x)
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu_after else x


def conv_bn_act(cin: int, cout: int, kernel_size: Size2, stride: Size2 = 1) -> ConvBN:
    """Conv → BN → ReLU."""
    return ConvBN(cin, cout, kernel_size, stride, relu_after=True)


def conv_bn(cin: int, cout: int, kernel_size: Size2, stride: Size2 = 1) -> ConvBN:
    """Conv → BN."""
    return ConvBN(cin, cout, kernel_size, stride)


def act_conv_bn(cin: int, cout: int, kernel_size: Size2, stride: Size2 = 1) -> ConvBN:
    """ReLU → Conv → BN (pre-activation)."""
    return ConvBN(cin, cout, kernel_size, stride, relu_before=True)


def act_sepconv_bn(cin: int, cout: int, kernel_size: Size2) -> ConvBN:
    """ReLU → SeparableConv → BN (official ``separable_act_conv_bn``)."""
    return ConvBN(cin, cout, kernel_size, relu_before=True, separable=True)


class ActConv(nn.Module):
    """ReLU → Conv without BN (official ``act_conv``, e.g. the heat-map regression RegMap)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Size2) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.relu(x))


def max_pool_same(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Keras ``MaxPooling2D(padding='same')``: TF padding with −∞."""
    x = pad_same(x, kernel, stride, value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def max_pool(x: Tensor, kernel: int = 2) -> Tensor:
    """Keras ``MaxPooling2D(kernel)`` with 'valid' padding and stride = kernel."""
    return F.max_pool2d(x, kernel, kernel)


def upsample(x: Tensor, factor: int = 2) -> Tensor:
    """Keras ``UpSampling2D``: nearest neighbour."""
    return F.interpolate(x, scale_factor=factor, mode="nearest")
