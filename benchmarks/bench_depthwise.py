"""The depthwise weight gradient on the CPU: oneDNN's kernels against ``deephar.depthwise``.

    python -m benchmarks.bench_depthwise [--threads 1] [--rounds 5] [--step]

Layers: the backward (input and weight gradient) of the K = 8 MPII model's three depthwise 5×5
shapes (batch 8, channels_last, bf16 as under bf16-mixed and fp32), each weight-gradient mode of
``DEEPHAR_DEPTHWISE_GRAD`` (``aten`` = oneDNN as before, ``fp32`` = oneDNN on fp32 copies,
``inductor`` = fused fp32 tap sums), median ms of ``rounds`` interleaved rounds after one warm-up
(the compilation). ``--alternatives``: other formulations of the weight gradient, not adopted
(576 × 32², bf16 input). ``--pointwise``: the separable convolution's other half, the
576 → 576 1×1 convolution at 32², forward and backward, in GFLOP/s. ``--step``: the whole training step (``bench_train.build_step``, channels_last,
fp32 and bf16-mixed) per mode, ms/image, in the same interleaved way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.bench_train import KERAS_BATCH, build_step
from benchmarks.run import table
from deephar import depthwise
from deephar.config import MPII_2D
from deephar.layers import DepthwiseConv2d

SHAPES = ((576, 32), (288, 16), (288, 8))  # (channels, size) of the MPII K = 8 depthwise layers


def interleave(fns: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds of each function over ``rounds`` rounds (order rotated), after a warm-up."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0 = time.perf_counter()
            fns[key]()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def layer_backward(channels: int, size: int, dtype: torch.dtype, how: str) -> Callable[[], None]:
    """Forward untimed, then the timed backward of one depthwise 5×5 layer (batch 8)."""
    conv = DepthwiseConv2d(channels, 5).to(memory_format=torch.channels_last)
    x = torch.randn(KERAS_BATCH, channels, size, size).contiguous(memory_format=torch.channels_last)
    x = x.to(dtype).requires_grad_(True)
    grad = torch.randn_like(x)

    def backward() -> None:
        with (
            depthwise.override(how),
            torch.autocast("cpu", torch.bfloat16, enabled=dtype != torch.float32),
        ):
            y = conv(x)
        y.backward(grad)

    return backward


def layer_rows(rounds: int) -> list[list[str]]:
    rows = []
    for channels, size in SHAPES:
        for dtype in (torch.bfloat16, torch.float32):
            fns = {how: layer_backward(channels, size, dtype, how) for how in depthwise.MODES}
            ms = interleave(fns, rounds)
            name = "bf16" if dtype == torch.bfloat16 else "fp32"
            rows.append([f"{channels} × {size}²", name] + [f"{1000 * ms[h]:.1f}" for h in ms])
    return rows


def per_sample_taps(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The 25 shifted products in eager PyTorch, one sample at a time (it stays in cache)."""
    size = grad.shape[-1]
    xp = F.pad(x, (2, 2, 2, 2))
    out = torch.zeros(5, 5, x.shape[1])
    for b in range(x.shape[0]):
        xb, gb = xp[b].float().permute(1, 2, 0), grad[b].float().permute(1, 2, 0)
        for i in range(5):
            for j in range(5):
                out[i, j] += (xb[i : i + size, j : j + size] * gb).sum((0, 1))
    return out.permute(2, 0, 1).unsqueeze(1)


def unfold_bmm(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """One ``unfold`` per kernel row, then a batched (1 × N) @ (N × 5) product per channel."""
    batch, channels, size, _ = grad.shape
    xp = F.pad(x, (2, 2, 2, 2)).float()
    g = grad.float().permute(1, 0, 2, 3).reshape(channels, 1, -1)
    rows = []
    for i in range(5):
        u = xp[:, :, i : i + size].unfold(3, 5, 1).permute(1, 0, 2, 3, 4).reshape(channels, -1, 5)
        rows.append(torch.bmm(g, u))
    return torch.cat(rows, 1).reshape(channels, 1, 5, 5)


def einsum_view(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``einsum`` over a doubly unfolded (B, C, 5, 5, H, W) view of the padded input."""
    size = grad.shape[-1]
    u = F.pad(x, (2, 2, 2, 2)).float().unfold(2, size, 1).unfold(3, size, 1)
    return torch.einsum("bcijhw,bchw->cij", u, grad.float()).unsqueeze(1)


def alternative_rows(rounds: int) -> list[list[str]]:
    """Each formulation's weight gradient of the 576 × 32² layer (bf16 input), ms and max error
    relative to oneDNN's fp32 kernel."""
    x = torch.randn(KERAS_BATCH, 576, 32, 32).contiguous(memory_format=torch.channels_last)
    x, grad = x.bfloat16(), torch.randn_like(x).bfloat16()
    w = torch.randn(576, 1, 5, 5)

    def onednn_bf16() -> torch.Tensor:
        args = (None, [1, 1], [2, 2], [1, 1], False, [0, 0], 576, [False, True, False])
        return torch.ops.aten.convolution_backward(grad, x, w.bfloat16(), *args)[1]

    fns = {
        "oneDNN bf16 (before)": onednn_bf16,
        "oneDNN fp32 on fp32 copies": lambda: depthwise._aten_fp32(x, grad, w, (2, 2)),
        "25 shifted products, eager": lambda: depthwise.tap_sums(x, grad, (5, 5), (2, 2)),
        "the same per sample, eager": lambda: per_sample_taps(x, grad),
        "unfold + bmm per channel": lambda: unfold_bmm(x, grad),
        "einsum over an unfolded view": lambda: einsum_view(x, grad),
        "25 shifted products, Inductor (ours)": lambda: depthwise._inductor_tap_sums(
            x, grad, (5, 5), (2, 2)
        ),
    }
    exact = depthwise._aten_fp32(x, grad, w, (2, 2))
    ms = interleave(fns, rounds)
    rows = []
    for name, fn in fns.items():
        err = ((fn().float() - exact).abs().max() / exact.abs().max()).item()
        rows.append([name, f"{1000 * ms[name]:.1f}", f"{err:.0e}"])
    return rows


def pointwise_rows(rounds: int) -> list[list[str]]:
    """The 576 → 576 1×1 convolution at 32² (batch 8, channels_last): ms and GFLOP/s."""
    rows = []
    args = (None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, False])
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(KERAS_BATCH, 576, 32, 32, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(576, 576, 1, 1, dtype=dtype).contiguous(memory_format=torch.channels_last)
        fns = {
            "forward": lambda x=x, w=w: F.conv2d(x, w),
            "backward": lambda x=x, w=w: torch.ops.aten.convolution_backward(x, x, w, *args),
        }
        flop = 2 * KERAS_BATCH * 32 * 32 * 576 * 576
        for name, t in interleave(fns, rounds).items():
            work = flop * (2 if name == "backward" else 1)
            name_dtype = "bf16" if dtype == torch.bfloat16 else "fp32"
            rows.append([f"{name} {name_dtype}", f"{1000 * t:.1f}", f"{work / t / 1e9:.0f}"])
    return rows


def step_rows(rounds: int) -> list[list[str]]:
    fns = {}
    for variant in ("+channels_last", "bf16+channels_last"):
        for how in depthwise.MODES:
            with depthwise.override(how):
                fns[(variant, how)] = build_step("pose", MPII_2D, KERAS_BATCH, "cpu", variant)
    ms = interleave({f"{v} {h}": fn for (v, h), fn in fns.items()}, rounds)
    return [[k, f"{1000 * t / KERAS_BATCH:.0f}"] for k, t in ms.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--step", action="store_true", help="also the whole training step")
    parser.add_argument("--alternatives", action="store_true", help="formulations not adopted")
    parser.add_argument("--pointwise", action="store_true", help="the 1×1 half, GFLOP/s")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
    modes = [f"{h} ms" for h in depthwise.MODES]
    print(table(layer_rows(args.rounds), ["layer backward", "dtype", *modes]))
    if args.alternatives:
        columns = ["576 × 32² weight gradient, bf16 input", "ms", "max rel. error vs fp32"]
        print(table(alternative_rows(args.rounds), columns))
    if args.pointwise:
        columns = ["576 → 576 1×1 at 32²", "ms", "GFLOP/s"]
        print(table(pointwise_rows(args.rounds), columns))
    if args.step:
        print(table(step_rows(args.rounds), ["training step, weight-gradient mode", "ms/image"]))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
