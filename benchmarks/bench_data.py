"""Data-pipeline throughput: training samples/s of each reader, in ONE process (= per worker core).

    python -m benchmarks.bench_data [--world data/bench_world] [--samples 16]

Reads the synthetic world (written in the four real on-disk formats, generated on first use) through
the real readers with training augmentation: MPII and Human3.6M still images at 256², Penn Action
and NTU clips of T = 16 frames at 256². A DataLoader with N workers delivers about N times this;
compare with the GPU's consumption (benchmarks/bench_train.py) to size ``data.num_workers``.
The synthetic frames are 320×240: real MPII photos and 1080p NTU video decode slower per sample;
``benchmarks/bench_data_real.py`` measures the real resolutions (raw vs prepared vs chunks).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.run import REPO, BenchContext, BenchReport, header, register, table
from datamodules.h36m import Human36MDataset
from datamodules.mpii import MPIIDataset
from datamodules.ntu import NTUDataset
from datamodules.penn import PennActionDataset
from datamodules.synthetic import generate_world

WORLD = REPO / "data" / "bench_world"
INPUT = 256
CLIP = 16


def pipelines(root: Path) -> dict[str, torch.utils.data.Dataset]:
    """The training pipeline of each dataset (augmentation on), at the paper's input size."""
    common = {"split": "train", "input_size": INPUT, "augment": True}
    return {
        "MPII (image)": MPIIDataset(root / "mpii", layout="pa16j", **common),
        "Human3.6M (image)": Human36MDataset(
            root / "h36m",
            layout="pa17j",
            subjects=(1, 5),
            **common,  # the world films S1, S5, S9
        ),
        f"Penn Action (clip T={CLIP})": PennActionDataset(
            root / "penn", layout="pa16j", clip_length=CLIP, **common
        ),
        f"NTU RGB+D (clip T={CLIP})": NTUDataset(
            root / "ntu", layout="pa20j", clip_length=CLIP, **common
        ),
    }


def samples_per_second(dataset: torch.utils.data.Dataset, samples: int) -> tuple[float, str]:
    dataset[0]  # warm-up: opens files, decoders
    start = time.perf_counter()
    for i in range(samples):
        item = dataset[(i * 7919) % len(dataset)]
    rate = samples / (time.perf_counter() - start)
    return rate, "×".join(str(s) for s in item["image"].shape)


def rows(root: Path, samples: int) -> list[list[str]]:
    generate_world(root, size="tiny", seed=0)
    out = []
    for name, dataset in pipelines(root).items():
        rate, shape = samples_per_second(dataset, samples)
        frames = rate * (CLIP if "clip" in name else 1)
        out.append([name, shape, f"{rate:.1f}", f"{frames:.0f}"])
    return out


@register
def data_throughput(ctx: BenchContext) -> BenchReport:
    torch.set_num_threads(1)  # one worker core
    samples = 8 if ctx.quick else 32
    columns = ["pipeline (training, augmented)", "sample", "samples/s", "frames/s"]
    md = header(ctx, "Data pipeline, one worker core", {"world": "synthetic tiny (real formats)"})
    try:
        body = table(rows(WORLD, samples), columns)
    finally:
        torch.set_num_threads(ctx.threads)
    note = "\nOne process, torch threads 1, decode + crop + augment + normalise per sample.\n"
    return BenchReport("data_pipeline", md + "\n" + body + note)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=WORLD)
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(table(rows(args.world, args.samples), ["pipeline", "sample", "samples/s", "frames/s"]))


if __name__ == "__main__":
    main()
