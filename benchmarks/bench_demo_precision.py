"""The demo's pose stage trained in several precisions side by side, scored as `make demo` scores it.

    python -m benchmarks.bench_demo_precision [--out runs/demo_precision] [--data data/synthetic]
        [--size demo|tiny] [--variants fp32:32-true:false bf16:bf16-mixed:true]

Every variant (``name:trainer.precision:channels_last``) is one ``experiments.train demo_pose``
on one thread, all started together (so that they share the machine alike); then each one's
best checkpoint is scored by ``experiments.demo.pose_results`` (single- and multi-crop PCKh@0.5 on
the MPII-format test set, MPJPE on the Human3.6M-format one, the torso PCK@0.5).
``<out>/demo_precision.md``: one row per variant, with its training's wall and CPU seconds.
Not part of `make bench`: minutes of training per variant (docs/performance_training.md).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from datamodules.synthetic import generate_world
from experiments import ablation, demo

SCORES = {  # column: (test set / protocol, metric, scale)
    "PCK@0.5 torso (%)": ("mpii/torso-pck", "pck@0.5", 100),
    "PCKh@0.5 single (%)": ("mpii/single-crop", "pckh@0.5", 100),
    "PCKh@0.5 multi (%)": ("mpii/multi-crop", "pckh@0.5", 100),
    "MPJPE single (mm)": ("h36m/single-crop", "mpjpe", 1),
    "MPJPE multi (mm)": ("h36m/multi-crop", "mpjpe", 1),
}


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str
    channels_last: str

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, precision, channels_last = text.split(":")
        return cls(name, precision, channels_last)


def train_command(variant: Variant, args: argparse.Namespace) -> list[str]:
    config, overrides = ablation.row_overrides(
        "pose", demo.demo_args(args.size, args.out, args.data)
    )
    overrides = [o for o in overrides if not o.startswith(("name=", "logger."))] + [
        f"name=precision-{variant.name}",
        "logger.kind=none",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"trainer.precision={variant.precision}",
        f"channels_last={variant.channels_last}",
    ]
    return [sys.executable, "-m", "experiments.train", config, *overrides]


def train_all(variants: list[Variant], args: argparse.Namespace) -> dict[str, float]:
    """Train every variant at once; → {name: wall seconds}. Exits on a failed training."""
    start, walls = time.perf_counter(), {}
    with contextlib.ExitStack() as stack:
        procs = {}
        for v in variants:
            log = stack.enter_context(open(args.out / f"{v.name}.log", "w"))
            procs[v.name] = subprocess.Popen(train_command(v, args), stdout=log, stderr=log)
        for name, proc in procs.items():
            if proc.wait() != 0:
                sys.exit(f"{name}: training failed, see {args.out / f'{name}.log'}")
            walls[name] = time.perf_counter() - start
    return walls


def score(variant: Variant, args: argparse.Namespace) -> dict[str, float]:
    row_args = demo.demo_args(args.size, args.out, args.data)
    ckpt = args.out / "checkpoints" / f"precision-{variant.name}" / "best.ckpt"
    pose, *_ = demo.pose_results(row_args, str(ckpt))
    return {col: pose[key][metric] * scale for col, (key, metric, scale) in SCORES.items()}


def table(rows: dict[str, dict[str, float]]) -> str:
    columns = list(next(iter(rows.values())))
    lines = ["| variant | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {n} | " + " | ".join(f"{r[c]:.1f}" for c in columns) + " |" for n, r in rows.items()
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo_precision"))
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--size", choices=sorted(ablation.SCHEDULE), default="demo")
    parser.add_argument(
        "--variants", nargs="+", default=["fp32:32-true:false", "bf16:bf16-mixed:true"]
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    generate_world(args.data, args.size, seed=0)
    variants = [Variant.parse(v) for v in args.variants]
    walls = train_all(variants, args)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    rows = {v.name: score(v, args) | {"training wall (s)": walls[v.name]} for v in variants}
    text = table(rows) + f"\nCPU seconds of all trainings together: {cpu:.0f}\n"
    (args.out / "demo_precision.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
