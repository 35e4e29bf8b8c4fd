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
import time
from dataclasses import dataclass

import torch

from benchmarks.run import BenchContext, BenchReport, header, register, table
from deephar.config import MPII_2D, PENN_MERGE, NetworkConfig
from deephar.losses import action_loss, pose_loss
from deephar.models.multitask import build_model
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


def build_step(task: str, cfg: NetworkConfig, batch: int, device: str, variant: str):
    """One training step (forward, loss, backward, optimiser) of ``variant`` ("fp32", "bf16",
    "+channels_last", "+compile": the pose and action networks compiled in place) on a random
    batch of ``batch`` samples."""
    net = build_model(cfg).to(device)
    cl = "channels_last" in variant
    module = (Pose2D3DModule(net, channels_last=cl) if task == "pose"
              else ActionModule(net, {"name": "sgd", "lr": 2e-4, "momentum": 0.98,
                                      "nesterov": True}, channels_last=cl))  # fmt: skip
    if "compile" in variant:
        backend = "inductor" if device == "cuda" else "eager"  # CPU: the dynamo path, no codegen
        for part in (net.pose, net.action):
            if part is not None:
                part.compile(backend=backend)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    data = random_batch(cfg, batch, task == "action", device)
    images = module.to_input(data["image"])
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if "bf16" in variant else (
        contextlib.nullcontext)  # fmt: skip

    def step():
        with autocast():
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
    if cpu:
        plans += [("pose", CPU_POSE, 8, "cpu", "fp32"), ("action", CPU_ACTION, 2, "cpu", "fp32")]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-cpu", action="store_true")
    args = parser.parse_args(argv)
    print(table(rows(args.steps, cpu=not args.no_cpu), COLUMNS))


if __name__ == "__main__":
    main()
