"""Depthwise convolutions in training on the CPU: the weight gradient by a faster kernel.

oneDNN's weight gradient of a depthwise convolution (the 5×5 of every separable block) is its slow
path on the CPU: one K = 8 MPII training step (batch 8, 256², bf16-mixed, channels_last, 2 threads)
spent about a third of its time there (docs/performance_training.md). The gradient is a sum of
``k_h·k_w`` channel-wise products,

    dW[c, 0, i, j] = Σ_{b, h, w} dY[b, c, h, w] · X_pad[b, c, h + i, w + j],

which Inductor turns into one fused, vectorised C++ reduction (``tap_sums``, compiled once per
shape), accumulated in fp32: the 576-channel 32² layer's backward 7.4× faster than oneDNN's in
bf16 (which also rounds the gradient to bf16) and 1.45× in fp32 (2 idle threads).

``depthwise_conv2d`` runs this only where it pays and where it changes nothing else: on the CPU,
in training (gradient needed for the weight), with channels_last input, stride 1 and symmetric
padding; inside a ``torch.compile``d network the sums are traced into its backward graph (one
graph, no break) and fused there by its compiler. The forward and the input gradient are oneDNN's,
unchanged (in the autocast dtype under ``torch.autocast``); only the weight gradient differs, by
its rounding. Everywhere else (NCHW, inference, CUDA) it is ``F.conv2d``.

``DEEPHAR_DEPTHWISE_GRAD`` picks the weight gradient: ``inductor`` (default; falls back to
``fp32`` with one line on stderr if Inductor cannot compile, e.g. no C++ compiler), ``fp32``
(oneDNN's fp32 kernel on fp32 copies, ~2× faster than its bf16 one), ``aten`` (the plain
``F.conv2d``, as before).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

ENV = "DEEPHAR_DEPTHWISE_GRAD"
MODES = ("inductor", "fp32", "aten")
RECOMPILE_LIMIT = 64  # one compiled kernel per (shape, dtype): a network has a handful

Pair = tuple[int, int]
_compiled: Callable[..., Tensor] | None = None
_inductor_failed = False
_override: list[str] = []


def mode() -> str:
    """The weight-gradient mode: ``override``'s, else ``DEEPHAR_DEPTHWISE_GRAD`` (default
    ``inductor``)."""
    if _override:
        return _override[-1]
    value = os.environ.get(ENV, "inductor").lower()
    if value not in MODES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


@contextlib.contextmanager
def override(how: str) -> Iterator[None]:
    """Forward passes inside run with weight-gradient mode ``how`` (e.g. a benchmark's rows)."""
    if how not in MODES:
        raise ValueError(f"depthwise weight-gradient mode {how!r}: expected one of {MODES}")
    _override.append(how)
    try:
        yield
    finally:
        _override.pop()


def tap_sums(x: Tensor, grad_out: Tensor, kernel: Pair, padding: Pair) -> Tensor:
    """Weight gradient of a stride-1 depthwise convolution, accumulated in fp32.

    x: (B, C, H + 2·p_h − k_h + 1, …) the convolution's input; grad_out: (B, C, H, W) the
    gradient of its output; returns (C, 1, k_h, k_w) fp32.
    """
    (kh, kw), (ph, pw) = kernel, padding
    height, width = grad_out.shape[-2:]
    xp = F.pad(x, (pw, pw, ph, ph)).float()
    g = grad_out.float()
    taps = [
        (xp[:, :, i : i + height, j : j + width] * g).sum((0, 2, 3))
        for i in range(kh)
        for j in range(kw)
    ]
    return torch.stack(taps, 1).reshape(-1, 1, kh, kw)


def _aten_fp32(x: Tensor, grad_out: Tensor, weight: Tensor, padding: Pair) -> Tensor:
    """oneDNN's depthwise weight gradient on fp32 copies: (C, 1, k_h, k_w) fp32."""
    groups = weight.shape[0]
    return torch.ops.aten.convolution_backward(
        grad_out.float(),
        x.float(),
        weight.float(),
        None,
        [1, 1],
        list(padding),
        [1, 1],
        False,
        [0, 0],
        groups,
        [False, True, False],
    )[1]


def _inductor_tap_sums(x: Tensor, grad_out: Tensor, kernel: Pair, padding: Pair) -> Tensor:
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(tap_sums, dynamic=False, fullgraph=True)
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return _compiled(x, grad_out, kernel, padding)


def weight_grad(x: Tensor, grad_out: Tensor, weight: Tensor, padding: Pair, how: str) -> Tensor:
    """dW of the depthwise convolution ``conv2d(x, weight, padding=padding, groups=C)`` given
    ``grad_out`` (B, C, H, W): (C, 1, k_h, k_w) fp32, by ``how`` (``inductor`` | ``fp32``)."""
    global _inductor_failed
    if torch.compiler.is_compiling():  # inside a compiled graph: its compiler fuses the sums
        return tap_sums(x, grad_out, tuple(weight.shape[-2:]), padding)
    if how == "inductor" and not _inductor_failed:
        try:
            return _inductor_tap_sums(x, grad_out, tuple(weight.shape[-2:]), padding)
        except Exception as err:  # noqa: BLE001 - any compile failure: fall back, say so once
            _inductor_failed = True
            print(
                f"deephar: depthwise weight gradient by Inductor failed ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); oneDNN fp32 used instead",
                file=sys.stderr,
                flush=True,
            )
    return _aten_fp32(x, grad_out, weight, padding)


class _DepthwiseConv(torch.autograd.Function):
    """oneDNN forward and input gradient; the weight gradient by ``weight_grad``."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, padding: Pair, how: str) -> Tensor:
        low = weight.to(x.dtype)  # the autocast copy of the weight (x is already cast)
        with torch.autocast("cpu", enabled=False):
            y = F.conv2d(x, low, None, 1, padding, 1, weight.shape[0])
        ctx.save_for_backward(x, low)
        ctx.padding, ctx.how, ctx.weight_dtype = padding, how, weight.dtype
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, low = ctx.saved_tensors
        grad_out = grad_out.to(x.dtype).contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = None
        with torch.autocast("cpu", enabled=False):
            if ctx.needs_input_grad[0]:
                grad_x = torch.ops.aten.convolution_backward(
                    grad_out,
                    x,
                    low,
                    None,
                    [1, 1],
                    list(ctx.padding),
                    [1, 1],
                    False,
                    [0, 0],
                    low.shape[0],
                    [True, False, False],
                )[0]
            if ctx.needs_input_grad[1]:
                grad_w = weight_grad(x, grad_out, low, ctx.padding, ctx.how)
        return grad_x, None if grad_w is None else grad_w.to(ctx.weight_dtype), None, None


def applies(x: Tensor, weight: Tensor, stride: Pair, padding: Pair) -> bool:
    """Whether ``depthwise_conv2d`` takes the fast weight gradient (see the module docstring)."""
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and weight.requires_grad
        and torch.is_grad_enabled()
        and tuple(stride) == (1, 1)
        and tuple(padding) == (weight.shape[-2] // 2, weight.shape[-1] // 2)
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()  # (B, C, 1, 1) is both: an NCHW network's stays on F.conv2d
        and mode() != "aten"
    )


def depthwise_conv2d(x: Tensor, weight: Tensor, padding: Pair) -> Tensor:
    """``F.conv2d(x, weight, padding=padding, groups=C)`` (stride 1, (B, C, H, W) → (B, C, H, W))
    with the weight gradient of ``weight_grad``; under CPU autocast in its dtype, as
    ``F.conv2d`` would run. Callers check ``applies`` first."""
    if torch.is_autocast_enabled("cpu"):
        x = x.to(torch.get_autocast_dtype("cpu"))
    elif x.dtype != weight.dtype:
        raise TypeError(f"depthwise_conv2d: input {x.dtype} and weight {weight.dtype} differ")
    return _DepthwiseConv.apply(x, weight, tuple(padding), mode())
