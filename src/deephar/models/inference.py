"""Inference-only rewrites of a trained network: same outputs, less work.

``prepare_for_inference`` folds every BatchNorm into the convolution before it (the official blocks
are Conv→BN, so each BN becomes a per-channel scale and bias of that convolution) and switches to
channels_last, where oneDNN runs the 5×5 depthwise convolutions fastest on the CPU.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from deephar.layers import ConvBN, SeparableConv2d


@torch.no_grad()
def fold_batchnorm(block: ConvBN) -> None:
    """Fold ``block.bn`` (eval statistics) into ``block.conv`` in place; ``bn`` becomes Identity."""
    bn = block.bn
    if not isinstance(bn, nn.BatchNorm2d):
        return
    conv = block.conv.pointwise if isinstance(block.conv, SeparableConv2d) else block.conv
    scale = torch.rsqrt(bn.running_var + bn.eps)  # (C,); γ ≡ 1 in the official BN
    if bn.weight is not None:
        scale = scale * bn.weight
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    shift = bn.bias - bn.running_mean * scale
    old = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.bias = nn.Parameter(old * scale + shift)
    block.bn = nn.Identity()


def prepare_for_inference(
    model: nn.Module, channels_last: bool = True, fuse: bool = True
) -> nn.Module:
    """A frozen eval-mode copy of ``model`` with BN folded and (optionally) channels_last."""
    model = copy.deepcopy(model).eval()
    if fuse:
        for module in model.modules():
            if isinstance(module, ConvBN):
                fold_batchnorm(module)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.requires_grad_(False)


def compile_for_cpu(model: nn.Module) -> nn.Module:
    """``torch.compile`` with frozen weights (Inductor's CPU path: prepacked oneDNN convolutions,
    ReLU/add fused into their producers). Compiles on the first call (tens of seconds)."""
    return torch.compile(model, options={"freezing": True})


class Autocast(nn.Module):
    """``module`` under bf16 autocast: convolutions in bf16 (CPUs with AVX512-BF16/AMX, GPUs),
    softmax and reductions kept in fp32 by autocast's op lists."""

    def __init__(self, module: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, *args, **kwargs):
        device = "cuda" if any(a.is_cuda for a in args if torch.is_tensor(a)) else "cpu"
        with torch.autocast(device, dtype=self.dtype):
            return self.module(*args, **kwargs)
