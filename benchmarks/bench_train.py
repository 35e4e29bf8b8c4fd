"""Training throughput of the task modules' steps: forward, loss, backward, optimiser step.

    python -m benchmarks.bench_train [--steps 20] [--no-cpu]

Pose2D3DModule (still images, the modules' RMSprop) and ActionModule (clips with the pose network
frozen, SGD Nesterov) on random batches (no data loading), steps/s and samples/s. CPU: fp32 at a
reduced size (input 128, K = 2, T = 8) so that it finishes in seconds; CUDA (when available): the
paper's sizes (256², K = 8 pose / K = 4 merge, T = 16) at GPU batch sizes in fp32, bf16 autocast,
+ channels_last and + ``torch.compile``; 3 warm-up steps timed apart (the compilation), then 20
timed steps (an H100 step of batch 24 takes milliseconds: 5 steps measured launch noise).
Joins ``make bench`` through ``benchmarks.run.register``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.roofline import matmul_peak, step_flops, summary
from benchmarks.run import (
    KERAS_PY,
    SPEED_TARGET,
    BenchContext,
    BenchReport,
    header,
    register,
    table,
)
from deephar import depthwise
from deephar.config import MPII_2D, PENN_MERGE, NetworkConfig
from deephar.losses import action_loss, pose_loss
from deephar.models.multitask import build_model
from deephar.models.precision import choose_training, cpu_flags, isa_name
from deephar.tasks import ActionModule, Pose2D3DModule

CPU_POSE = MPII_2D.with_(input_size=128, pose_blocks=2)
CPU_ACTION = PENN_MERGE.with_(input_size=128, pose_blocks=2, num_frames=8)


def random_batch(cfg: NetworkConfig, batch: int, clip: bool, device: str) -> dict:
    lead = (batch, cfg.num_frames) if clip else (batch,)
    size, j = cfg.input_size, cfg.num_joints
    return {
        "image": torch.rand(*lead, 3, size, size, device=device) * 2 - 1,
        "pose": torch.rand(*lead, j, 3, device=device),
        "pose_valid": torch.ones(*lead, j, 3, dtype=torch.bool, device=device),
        "visible": torch.ones(*lead, j, device=device),
        "action": torch.randint(0, max(cfg.num_actions, 1), (batch,), device=device),
    }


@dataclass
class StepTiming:
    steps_per_s: float
    samples_per_s: float
    warmup_s: float  # wall time of the warm-up steps (the compilation, with ``compile``)
    step_s: float  # one timed step


def build_step(
    task: str, cfg: NetworkConfig, batch: int, device: str, variant: str, backend: str = "inductor"
):
    """One training step (forward, loss, backward, optimiser) of ``variant`` ("fp32", "bf16",
    "+channels_last", "+compile": the pose and action networks compiled in place with
    ``backend``; "+onednn-dw": the depthwise weight gradient by oneDNN, as before
    ``deephar.depthwise``) on a random batch of ``batch`` samples."""
    net = build_model(cfg).to(device)
    cl = "channels_last" in variant
    module = (Pose2D3DModule(net, channels_last=cl) if task == "pose"
              else ActionModule(net, {"name": "sgd", "lr": 2e-4, "momentum": 0.98,
                                      "nesterov": True}, channels_last=cl))  # fmt: skip
    if "compile" in variant:
        for part in (net.pose, net.action):
            if part is not None:
                part.compile(backend=backend)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    data = random_batch(cfg, batch, task == "action", device)
    images = module.to_input(data["image"])
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if "bf16" in variant else (
        contextlib.nullcontext)  # fmt: skip
    how = "aten" if "onednn-dw" in variant else depthwise.mode()

    def step():
        with depthwise.override(how), autocast():
            if task == "pose":
                loss = pose_loss(net.forward_pose(images), data)[0]
            else:
                loss = action_loss(net.forward_clip(images), data["action"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_detail(task: str, cfg: NetworkConfig, batch: int, steps: int, device: str,
                   variant: str, warmup: int = 3) -> StepTiming:  # fmt: skip
    """``steps`` timed training steps after ``warmup`` untimed ones (timed apart: compilation)."""
    step = build_step(task, cfg, batch, device, variant)
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    timed = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - timed) / steps
    return StepTiming(1 / seconds, batch / seconds, timed - start, seconds)


def measure(task: str, cfg: NetworkConfig, batch: int, steps: int, device: str, variant: str):
    """(steps/s, samples/s) of ``steps`` timed training steps after 3 warm-up steps."""
    timing = measure_detail(task, cfg, batch, steps, device, variant)
    return timing.steps_per_s, timing.samples_per_s


GPU_VARIANTS = ("fp32", "bf16", "bf16+channels_last", "bf16+channels_last+compile")


def rows(steps: int, cpu: bool = True, batches: tuple[int, ...] = (24, 64)) -> list[list[str]]:
    """CPU rows at the reduced size; on CUDA the paper's sizes at GPU batch sizes (pose: 24 =
    paper, 64; action: 2 and 8 clips of T = 16), every variant, warm-up (compile) time apart."""
    plans = []
    if cpu:  # the modules' compile=true beside eager (inductor: C++ codegen with gcc)
        for variant in ("fp32", "fp32+compile"):
            plans += [
                ("pose", CPU_POSE, 8, "cpu", variant),
                ("action", CPU_ACTION, 2, "cpu", variant),
            ]
    if torch.cuda.is_available():
        for variant in GPU_VARIANTS:
            plans += [("pose", MPII_2D, b, "cuda", variant) for b in batches]
            plans += [("action", PENN_MERGE, b, "cuda", variant) for b in (2, 8)]
    out = []
    for task, cfg, batch, device, variant in plans:
        t = measure_detail(task, cfg, batch, steps, device, variant)
        size = f"{cfg.input_size}², K={cfg.pose_blocks}" + (
            f", T={cfg.num_frames}" if task == "action" else ""
        )
        out.append([task, device, variant, size, str(batch), f"{t.steps_per_s:.2f}",
                    f"{t.samples_per_s:.1f}", f"{t.warmup_s:.1f}"])  # fmt: skip
    return out


COLUMNS = ["module", "device", "variant", "network", "batch", "steps/s", "samples/s",
           "warm-up s (3 steps, compile incl.)"]  # fmt: skip


@register
def train_throughput(ctx: BenchContext) -> BenchReport:
    steps = 3 if ctx.quick else 20
    body = table(rows(steps), COLUMNS)
    text = header(ctx, "Training throughput (task modules)", {"steps timed": str(steps)})
    return BenchReport("train_throughput", text + "\n" + body)


# ---- one training step of the K = 8 MPII model beside the official Keras model ----
KERAS_BATCH = 8
VS_KERAS = {  # label: bench variant (the CPU's bf16 autocast = Lightning's bf16-mixed on a CPU)
    "eager NCHW fp32": "fp32",
    "channels_last fp32, oneDNN depthwise weight gradient (before)": "+channels_last+onednn-dw",
    "channels_last fp32": "+channels_last",
    "channels_last + bf16-mixed, oneDNN depthwise weight gradient (before)": (
        "bf16+channels_last+onednn-dw"
    ),
    "channels_last + bf16-mixed": "bf16+channels_last",
    "channels_last + bf16-mixed, torch.compile (inductor)": "bf16+channels_last+compile",
}


@dataclass
class StepVariant:
    """A training step of ours, its setup cost and its ms/image per round."""

    label: str
    step: Callable[[], None]
    setup_s: float  # build + first step (the compilation, with torch.compile)
    second_s: float  # the second step (inductor may still compile the backward's leftovers)
    ms: list[float] = field(default_factory=list)


def build_vs_keras(labels: Iterable[str]) -> list[StepVariant]:
    """Our MPII K = 8 training step (batch 8, 256²) in each variant, warmed up."""
    out = []
    for label in labels:
        t0 = time.perf_counter()
        step = build_step("pose", MPII_2D, KERAS_BATCH, "cpu", VS_KERAS[label])
        step()
        t1 = time.perf_counter()
        step()
        out.append(StepVariant(label, step, t1 - t0, time.perf_counter() - t1))
    return out


def interleaved(variants: list[StepVariant], keras: Any, rounds: int) -> list[float]:
    """``rounds`` rounds of one Keras training step, then one step of every variant (order
    rotated per round); returns Keras ms/image per round (empty without Keras)."""
    keras_ms: list[float] = []
    if keras is not None:
        keras.time(KERAS_BATCH, train=True)  # traces the tf.function and warms up
    for r in range(rounds):
        if keras is not None:
            keras_ms.append(keras.time(KERAS_BATCH, train=True))
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            t0 = time.perf_counter()
            v.step()
            v.ms.append(1000 * (time.perf_counter() - t0) / KERAS_BATCH)
    return keras_ms


def vs_keras_rows(variants: list[StepVariant], keras_ms: list[float]) -> list[list[str]]:
    k = statistics.median(keras_ms) if keras_ms else None
    base = statistics.median(variants[0].ms)
    rows = []
    for v in variants:
        t = statistics.median(v.ms)
        ratio = None if k is None else t / k
        rows.append(
            [
                v.label,
                f"{t:.0f}",
                f"{min(v.ms):.0f}–{max(v.ms):.0f}",
                "not run" if k is None else f"{k:.0f}",
                "–" if ratio is None else f"{ratio:.2f}",
                f"{t / base:.2f}",
                f"{v.setup_s:.0f} / {v.second_s:.0f}",
                "–" if ratio is None else ("yes" if ratio <= SPEED_TARGET else "NO"),
            ]
        )
    return rows


def start_keras() -> tuple[Any, str]:
    """The Keras timing server (``benchmarks.keras_reference --serve``), or None and why not."""
    from benchmarks.bench_cpu_pose import KerasServer

    if not KERAS_PY.exists():
        return None, f"not run: {KERAS_PY} missing; create it with `make bench-keras-env`"
    try:
        server = KerasServer(torch.get_num_threads(), parity=False)
    except (OSError, RuntimeError, ValueError) as err:
        return None, f"not run: {err}"
    report = server.report
    return server, (
        f"TensorFlow {report['tensorflow']} tf.keras replica of the official model "
        f"(params = official: {'yes' if report['params_match_official'] else 'NO'}), "
        f"RMSprop, forward + loss + gradients + update in one tf.function"
    )


@register
def train_vs_keras(ctx: BenchContext) -> BenchReport:
    """One training step of the K = 8 MPII model (batch 8, 256²): ours in every CPU variant vs
    the official model's in Keras, interleaved round by round."""
    load0 = os.getloadavg()
    variants = build_vs_keras(VS_KERAS)
    keras, keras_line = start_keras()
    if keras is None:
        print(f"train_vs_keras: Keras rows {keras_line}", flush=True)
    try:
        keras_ms = interleaved(variants, keras, ctx.runs)
    finally:
        if keras is not None:
            keras.close()
    load1 = os.getloadavg()
    flops, peak = step_flops(variants[0].step, KERAS_BATCH), matmul_peak()
    keras_median = statistics.median(keras_ms) if keras_ms else None
    extra = {
        "model": f"MPII 2D pose K = 8, 256², batch {KERAS_BATCH}, random weights and data",
        "ours": "Pose2D3DModule's RMSprop + pose_loss, forward + backward + step (benchmarks."
        "bench_train.build_step); bf16-mixed = torch.autocast('cpu', bfloat16) as Lightning's "
        "bf16-mixed on a CPU",
        "Keras": keras_line,
        "ISA": isa_name(cpu_flags()),
        "training defaults for this CPU (deephar.models.precision.choose_training)": choose_training(
            "cpu"
        ).describe(),
        "load average (1 min) before / after": f"{load0[0]:.1f} / {load1[0]:.1f}",
        "rounds": f"{ctx.runs} (each: one Keras step, then one step of every variant, rotated)",
        "FLOP count and peak (benchmarks.roofline)": summary(
            flops, peak, keras_median, SPEED_TARGET
        ),
    }
    columns = [
        "training step",
        "ms/image (median)",
        "range",
        "Keras ms/image",
        "ratio to Keras",
        "ratio to eager fp32",
        "setup s (1st / 2nd step)",
        f"≤ {SPEED_TARGET}?",
    ]
    note = (
        "\nms/image: median over the rounds of one step's wall time ÷ batch; Keras measured in the "
        "same rounds, same threads. setup s: build + first step (torch.compile: the compilation "
        "of forward and backward), then the second step.\n"
    )
    md = header(ctx, "CPU training step, pose model: ours vs official Keras", extra)
    return BenchReport(
        "train_vs_keras", md + "\n" + table(vs_keras_rows(variants, keras_ms), columns) + note
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-cpu", action="store_true")
    args = parser.parse_args(argv)
    print(table(rows(args.steps, cpu=not args.no_cpu), COLUMNS))


if __name__ == "__main__":
    main()
