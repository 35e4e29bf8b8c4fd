"""How far a training step is from what the CPU can do: its FLOP count against a measured peak.

    python -m benchmarks.roofline [--threads 2]

``step_flops`` counts one training step with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matrix products; element-wise work, BN and pooling count 0), with the
convolution backward counted right for grouped (depthwise) convolutions: PyTorch's own formula
treats a grouped weight gradient as a dense one (576× too many FLOPs for the 576-channel 5×5
depthwise layer). Each gradient of a convolution costs what its forward does. ``matmul_peak``
measures the GFLOP/s of a large matrix product (oneDNN / MKL at their best) in fp32 and bf16 on
the threads in use, the practical ceiling of any convolution on this machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from deephar import depthwise


def conv_backward_flop(grad_out_shape, x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOP of ``aten.convolution_backward``: each asked gradient (input, weight) as many as the
    forward, 2·B·H_out·W_out·C_out·(C_in / groups)·k_h·k_w (groups included in ``w_shape``).
    Shapes as ``FlopCounterMode`` passes them; ``args[7]`` is the output mask."""
    output_mask = args[7]
    transposed = args[4]
    spatial = x_shape if transposed else grad_out_shape
    forward = 2 * grad_out_shape[0] * math.prod(spatial[2:]) * math.prod(w_shape)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


@dataclass(frozen=True)
class StepFlops:
    """FLOP of one training step (convolutions and matrix products)."""

    forward: float
    backward: float
    batch: int

    @property
    def per_image(self) -> float:
        return (self.forward + self.backward) / self.batch


def step_flops(step: Callable[[], None], batch: int) -> StepFlops:
    """FLOP of one call of ``step`` (forward + backward + update, ``batch`` samples); the
    depthwise weight gradient counted as oneDNN computes it (the math, not our kernel)."""
    backward_op = torch.ops.aten.convolution_backward
    with (
        depthwise.override("aten"),
        FlopCounterMode(display=False, custom_mapping={backward_op: conv_backward_flop}) as counter,
    ):
        step()
    counts = counter.get_flop_counts()["Global"]
    backward = float(counts.get(torch.ops.aten.convolution_backward, 0))
    return StepFlops(counter.get_total_flops() - backward, backward, batch)


@dataclass(frozen=True)
class Peak:
    """GFLOP/s of an n×n matrix product (median of the repeats) on the threads in use."""

    fp32: float
    bf16: float
    threads: int


def matmul_peak(size: int = 2048, repeats: int = 5) -> Peak:
    """The machine's practical peak: ``size``² × ``size``² products in fp32 and bf16."""

    def rate(dtype: torch.dtype) -> float:
        a = torch.randn(size, size, dtype=dtype)
        a @ a
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t0)
        return 2 * size**3 / statistics.median(times) / 1e9

    return Peak(rate(torch.float32), rate(torch.bfloat16), torch.get_num_threads())


def summary(flops: StepFlops, peak: Peak, keras_ms: float | None, target: float) -> str:
    """One paragraph: FLOP per image, the peak, the bounds it sets, Keras' rate, the goal's."""
    per_image = flops.per_image / 1e9
    text = (
        f"{per_image:.1f} GFLOP per image and step (forward {flops.forward / flops.batch / 1e9:.1f}"
        f", backward {flops.backward / flops.batch / 1e9:.1f}); matrix-product peak of this run "
        f"({peak.threads} threads): fp32 {peak.fp32:.0f}, bf16 {peak.bf16:.0f} GFLOP/s, so a "
        f"step cannot take less than {1000 * per_image / peak.fp32:.0f} ms/image in fp32 or "
        f"{1000 * per_image / peak.bf16:.0f} in bf16"
    )
    if keras_ms:
        goal = target * keras_ms
        need = per_image / (goal / 1000)
        text += (
            f"; Keras' step runs at {per_image / (keras_ms / 1000):.0f} GFLOP/s; the goal "
            f"(≤ {target} × Keras = {goal:.0f} ms/image) needs {need:.0f} GFLOP/s sustained, "
            f"{100 * need / peak.fp32:.0f} % of the fp32 peak, {100 * need / peak.bf16:.0f} % "
            "of the bf16 peak"
        )
    return text + "."


def main(argv: list[str] | None = None) -> None:
    from benchmarks.bench_train import KERAS_BATCH, build_step
    from deephar.config import MPII_2D

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    step = build_step("pose", MPII_2D, KERAS_BATCH, "cpu", "+channels_last")
    print(summary(step_flops(step, KERAS_BATCH), matmul_peak(), None, 0.5))


if __name__ == "__main__":
    main()
