"""Speed of the MPII K=8 pose model (256×256): forward and forward+backward, ms/image.

    python -m benchmarks.bench_model [--runs 5] [--batch 1 8] [--no-cpu] [--threads N]

CPU: fp32, forward under ``torch.inference_mode``; CUDA (when available): fp32, bf16 autocast,
channels_last and ``torch.compile`` variants at batches 1 / 24 / 64, 20 timed runs, the warm-up
(compilation) time reported apart. Median of the timed runs after warm-up. Joins
``make bench`` through ``benchmarks.run.register``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.run import BenchContext, BenchReport, header, register, table
from deephar.config import MPII_2D
from deephar.models.pose import PoseNet


@dataclass
class Row:
    device: str
    variant: str
    batch: int
    mode: str  # "forward" | "forward+backward"
    ms_per_image: float
    warmup_s: float = 0.0  # the untimed warm-up runs (torch.compile's compilation included)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(
    fn: Callable[[], object], device: str, batch: int, runs: int, warmup: int
) -> tuple[float, float]:
    """(median ms/image of ``runs`` timed calls, seconds of the ``warmup`` untimed ones)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times) / batch, warm


def _loss(out) -> torch.Tensor:
    """A scalar touching every block's pose and visibility (what training backpropagates)."""
    return sum(p.float().sum() for p in out.pose) + sum(v.float().sum() for v in out.visibility)


def _variant(name: str, device: str) -> tuple[torch.nn.Module, Callable, torch.memory_format]:
    """(model, autocast context factory, memory format) of a named variant."""
    model = PoseNet(MPII_2D).to(device)
    fmt = torch.channels_last if "channels_last" in name else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if "compile" in name:
        model = torch.compile(model)
    if "bf16" in name:
        return model, lambda: torch.autocast(device, dtype=torch.bfloat16), fmt
    return model, contextlib.nullcontext, fmt


def measure(device: str, variant: str, batches: tuple[int, ...], runs: int) -> list[Row]:
    model, autocast, fmt = _variant(variant, device)
    size = MPII_2D.input_size
    warmup = 3 if "compile" in variant else 1
    rows = []
    for b in batches:
        x = torch.randn(b, 3, size, size, device=device).to(memory_format=fmt)

        def forward(x=x):
            with torch.inference_mode(), autocast():
                return model.eval()(x)

        def train_step(x=x):
            model.train()
            with autocast():
                loss = _loss(model(x))
            loss.backward()
            model.zero_grad(set_to_none=True)

        for mode, fn in (("forward", forward), ("forward+backward", train_step)):
            ms, warm = median_ms(fn, device, b, runs, warmup)
            rows.append(Row(device, variant, b, mode, ms, warm))
    return rows


GPU_BATCHES = (1, 24, 64)  # 1: latency; 24: the paper's batch; 64: what fills an H100
GPU_RUNS = 20


def bench_model(batches: tuple[int, ...] = (1, 8), runs: int = 5, cpu: bool = True) -> list[Row]:
    """All rows: CPU fp32 at ``batches`` (unless ``cpu`` is False), then the CUDA variants at
    ``GPU_BATCHES`` with ``GPU_RUNS`` timed runs when a GPU is present."""
    rows = measure("cpu", "fp32", batches, runs) if cpu else []
    if torch.cuda.is_available():
        for variant in (
            "fp32",
            "bf16 autocast",
            "channels_last",
            "channels_last + bf16",
            "compile",
            "compile + channels_last + bf16",
        ):
            rows += measure("cuda", variant, GPU_BATCHES, max(runs, GPU_RUNS))
    return rows


def markdown(rows: list[Row]) -> str:
    columns = ["device", "variant", "batch", "mode", "ms/image", "warm-up s (compile incl.)"]
    cells = [[r.device, r.variant, str(r.batch), r.mode, f"{r.ms_per_image:.2f}",
              f"{r.warmup_s:.1f}"] for r in rows]  # fmt: skip
    return table(cells, columns)


@register
def model_speed(ctx: BenchContext) -> BenchReport:
    """`make bench`: forward and forward+backward of the K=8 pose model."""
    rows = bench_model(ctx.batches, runs=3 if ctx.quick else 5)
    extra = {"GPU": torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}
    md = header(ctx, "Pose model (MPII 2D, K=8, 256²): forward and forward+backward", extra)
    return BenchReport("model_speed", md + "\n" + markdown(rows))


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench_model(tuple(args.batch), args.runs, cpu=not args.no_cpu)
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
