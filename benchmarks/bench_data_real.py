"""Loader throughput at real resolution, per core: raw files vs prepared JPEGs vs LitData chunks,
against what one GPU consumes in training.

    python -m benchmarks.bench_data_real [--samples 16] [--world data/bench_world_real] [--mpii]

``--mpii``: MPII raw only, per core, as one worker's reads and through a 2-worker DataLoader (the
batches' trip included). ``--compare [--rounds 3]``: the same two rates with the reader's
``reduced_decode`` off and on (JPEG DCT scaling), interleaved rounds in one process.
``--prepared [--rounds 3]``: the same two rates, MPII raw (the reader's default) against its
prepared folder (``python -m datamodules.prepare mpii``), interleaved rounds in one process, with
the load average. The default run (``make bench``) measures the MPII pair in interleaved rounds
too (``MPII_ROUNDS``) and reports their ratio and the load average. Run as a
file it measures the library on ``PYTHONPATH``, e.g. an older checkout:
``PYTHONPATH=../old/src:../old python benchmarks/bench_data_real.py --mpii --world /tmp/bench``
(``--world`` outside that checkout).

The synthetic world written at the real files' resolutions (Human3.6M 1000×1002 H.264 at 50 fps,
250-frame videos: one keyframe per 250 frames like x264's default; NTU 1920×1080, 100 frames; MPII
1280×720 JPEGs), prepared (``datamodules.prepare``) and chunked (``datamodules.streaming``) on first
use. Each pipeline is read in ONE process (as a loader worker: torch and OpenCV threads 1),
training augmentation on, random sample order, timed in CPU seconds of the process (= one loader
core, whatever else runs). GPU demand: ``bench_train`` images/s (K=8 pose network, 256², bf16) on
a GPU when one is present, else the FLOP estimate: forward FLOPs of the K=8 network
(``torch.utils.flop_counter``) × 3 (forward + backward) against an H100's dense bf16 rate at an
assumed model FLOP utilisation. A clip of T frames counts T images. Cores per GPU = demand / rate.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.run import REPO, BenchContext, BenchReport, header, register, table

WORLD = REPO / "data" / "bench_world_real"
WORLD_VERSION = 2  # 2: the MPII prepared folder
MPII_ROUNDS = 5  # interleaved rounds of the MPII raw / prepared pair in the default run
H36M_FRAMES, NTU_FRAMES, CLIP = 250, 100, 16
H100_BF16_DENSE = 989e12  # FLOP/s, NVIDIA H100 SXM datasheet (dense, no sparsity)
ASSUMED_MFU = 0.15  # share of that rate a training step of this depthwise-heavy network reaches
GPU_BATCH, GPU_STEPS = 24, 5  # bench_train's paper-sized pose row (batch 24 images)


def real_world(root: Path, log=print) -> dict[str, Path]:
    """Write (once) the real-resolution world, its prepared folders and its LitData chunks."""
    from datamodules.prepare import h36m as prep_h36m
    from datamodules.prepare import ntu as prep_ntu
    from datamodules.prepare.chunks import write_chunks
    from datamodules.prepare.runner import prepare
    from datamodules.synthetic.world import RESOLUTIONS
    from datamodules.synthetic.write_h36m import write_h36m
    from datamodules.synthetic.write_ntu import MISSING_LIST, write_performance

    marker, res = root / "bench_world.json", RESOLUTIONS["real"]
    paths = {k: root / k for k in ("mpii", "h36m", "ntu", "prepared", "chunks")}
    try:
        if json.loads(marker.read_text()).get("version") == WORLD_VERSION:
            return paths
    except (OSError, ValueError):
        pass
    start = time.perf_counter()
    mpii_world(root)
    write_h36m(paths["h36m"], (1,), 1, H36M_FRAMES, seed=0, size=res["h36m"])
    write_performance(paths["ntu"], 1, 1, "wave", NTU_FRAMES, 0, size=res["ntu"])
    (paths["ntu"] / MISSING_LIST).write_text("")
    written = time.perf_counter()
    facts = {"version": WORLD_VERSION, "write_s": round(written - start, 1)}
    for name, mod, jobs, opts in (
        ("h36m", prep_h36m, prep_h36m.jobs(paths["h36m"], (1,)), prep_h36m.options()),
        ("ntu", prep_ntu, prep_ntu.jobs(paths["ntu"]), prep_ntu.options(clip_lengths=(CLIP,))),
    ):
        t0 = time.perf_counter()
        meta = prepare(name, mod.run, jobs, paths["prepared"] / name, opts, workers=1, log=log)
        t1 = time.perf_counter()
        write_chunks(paths["prepared"] / name, paths["chunks"] / name, name, splits=("train",))
        facts[name] = {"prepare_s": round(t1 - t0, 2), "chunks_s": round(time.perf_counter() - t1, 2),
                       "frames_stored": meta["frames"], "videos": meta["videos"]}  # fmt: skip
    t0 = time.perf_counter()
    meta = mpii_prepared(root, log)
    seconds = round(time.perf_counter() - t0, 2)
    facts["mpii"] = {"prepare_s": seconds, "frames_stored": meta["frames"]}
    marker.write_text(json.dumps(facts, indent=1))
    return paths


def mpii_prepared(world: Path = WORLD, log=print) -> dict:
    """Prepare (once: resumable, a finished folder is only merged and verified again) the MPII
    photos of ``world`` into ``world/prepared/mpii``; its ``prepared.json``."""
    from datamodules.prepare import mpii as prep_mpii
    from datamodules.prepare.runner import prepare

    out = world / "prepared" / "mpii"
    if (out / "prepared.json").is_file():
        return json.loads((out / "prepared.json").read_text())
    root = mpii_world(world)
    jobs, opts = prep_mpii.jobs(root), prep_mpii.options(root)
    return prepare("mpii", prep_mpii.run, jobs, out, opts, workers=1, log=log)


def pipelines(p: dict[str, Path]) -> dict[tuple[str, str], torch.utils.data.Dataset]:
    """(dataset, path) → the training dataset (augmentation on, 256²)."""
    from datamodules.h36m import Human36MDataset
    from datamodules.mpii import MPIIDataset
    from datamodules.ntu import NTUDataset
    from datamodules.streaming import StreamingSource

    h36m = {"split": "train", "subjects": (1,), "augment": True}
    ntu = {"split": "train", "clip_length": CLIP, "augment": True}
    cache = p["chunks"] / "cache"
    return {
        ("MPII (1280×720 JPEG)", "raw"): MPIIDataset(p["mpii"], split="train", augment=True),
        ("MPII (1280×720 JPEG)", "prepared"): MPIIDataset(
            None, prepared=p["prepared"] / "mpii", split="train", augment=True
        ),
        ("Human3.6M (1000×1002 H.264)", "raw"): Human36MDataset(p["h36m"], **h36m),
        ("Human3.6M (1000×1002 H.264)", "prepared"): Human36MDataset(
            None, prepared=p["prepared"] / "h36m", **h36m
        ),  # fmt: skip
        ("Human3.6M (1000×1002 H.264)", "chunks"): StreamingSource(
            p["chunks"] / "h36m" / "train", "h36m", cache_dir=cache
        ),  # fmt: skip
        (f"NTU (1920×1080, clip T={CLIP})", "raw"): NTUDataset(p["ntu"], **ntu),
        (f"NTU (1920×1080, clip T={CLIP})", "prepared"): NTUDataset(
            None, prepared=p["prepared"] / "ntu", **ntu
        ),  # fmt: skip
        (f"NTU (1920×1080, clip T={CLIP})", "chunks"): StreamingSource(
            p["chunks"] / "ntu" / "train", "ntu", cache_dir=cache, clip_length=CLIP
        ),  # fmt: skip
    }


def samples_per_second(dataset, samples: int) -> float:
    """Samples per CPU-second of this process (all its threads) in random-order reads after one
    warm-up read: the rate of one fully used core, robust to other processes on the machine."""
    n = len(dataset)
    dataset[n // 2]
    start = time.process_time()
    for i in range(samples):
        dataset[(i * 7919 + 1) % n]
    return samples / (time.process_time() - start)


def as_worker(worker_id: int = 0) -> None:
    """This process as one loader worker: one OpenCV thread (``datamodules.mixed.init_worker``)."""
    import cv2

    cv2.setNumThreads(1)


def loader_rate(dataset, samples: int, workers: int = 2, batch: int = 24) -> float:
    """Samples per CPU-second of a DataLoader (``workers`` processes + this one: decode, collate,
    the batches' trip through shared memory) over ``samples`` random draws, batches of ``batch``."""
    import resource

    from torch.utils.data import DataLoader, RandomSampler

    def cpu(who: int) -> float:
        use = resource.getrusage(who)
        return use.ru_utime + use.ru_stime

    # this process at one OpenCV thread BEFORE the fork: a forked worker's cv2.setNumThreads
    # blocks forever when this process's pool threads sat waiting at the fork (OpenCV 4, pthreads:
    # the copied condition variable has waiters that no longer exist)
    as_worker()
    sampler = RandomSampler(dataset, replacement=True, num_samples=samples)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                        worker_init_fn=as_worker)  # fmt: skip
    start = cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN)
    count = sum(len(b["sample_id"]) for b in loader)  # the workers exit (and are reaped) at the end
    return count / (cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN) - start)


def mpii_world(world: Path = WORLD) -> Path:
    """The MPII part of the real-resolution world (1280×720 JPEGs), written once: its root."""
    from datamodules.synthetic.world import RESOLUTIONS
    from datamodules.synthetic.write_mpii import write_mpii

    root = world / "mpii"
    if not (world / "mpii_world.json").is_file():
        write_mpii(root, 12, 2, 0, seed=0, sizes=RESOLUTIONS["real"]["mpii"])
        (world / "mpii_world.json").write_text(json.dumps({"version": WORLD_VERSION}))
    return root


def mpii_rows(samples: int, world: Path = WORLD) -> list[list[str]]:
    """MPII raw only (1280×720 JPEGs): one worker's ``__getitem__`` and a 2-worker DataLoader,
    per core — the rows that compare code versions in a minute (see ``main``)."""
    from datamodules.mpii import MPIIDataset

    torch.set_num_threads(1)
    as_worker()
    dataset = MPIIDataset(mpii_world(world), split="train", augment=True)
    item = samples_per_second(dataset, samples)
    loader = loader_rate(dataset, samples)
    return [["MPII (1280×720 JPEG)", "raw: one worker's reads", f"{item:.1f}"],
            ["MPII (1280×720 JPEG)", "raw: DataLoader, 2 workers, batch 24", f"{loader:.1f}"]]  # fmt: skip


def factor_mix(dataset) -> str:
    """Shares of the decode factors f (``MPIIFiles.frames``) over the dataset's persons × its
    training scales (each equally likely), e.g. "f=1 33 %, f=2 67 %"."""
    windows = np.outer(dataset.window, np.asarray(dataset.aug.scales, np.float64)).ravel()
    f = np.array(
        [max([r for r in (2, 4, 8) if w / r >= dataset.input_size] or [1]) for w in windows]
    )
    return ", ".join(f"f={r} {np.mean(f == r):.0%}" for r in (1, 2, 4, 8) if (f == r).any())


def mpii_compare(samples: int, rounds: int, world: Path = WORLD) -> tuple[list[list[str]], str]:
    """``reduced_decode`` off vs on in ONE process, ``rounds`` interleaved rounds of ``samples``
    random reads each (one worker's reads and a 2-worker DataLoader): rows of per-core rates and
    the on / off ratio of the means, and the factor mix of the reads."""
    from datamodules.mpii import MPIIDataset

    torch.set_num_threads(1)
    as_worker()
    root = mpii_world(world)
    data = {on: MPIIDataset(root, split="train", augment=True, reduced_decode=on)
            for on in (False, True)}  # fmt: skip
    rates = {(how, on): [] for how in ("item", "loader") for on in (False, True)}
    for _ in range(rounds):
        for on in (False, True):
            rates[("item", on)].append(samples_per_second(data[on], samples))
            rates[("loader", on)].append(loader_rate(data[on], samples))
    out = []
    for how, name in (
        ("item", "one worker's reads"),
        ("loader", "DataLoader, 2 workers, batch 24"),
    ):
        off, on = rates[(how, False)], rates[(how, True)]
        out.append([name, ", ".join(f"{r:.0f}" for r in off), ", ".join(f"{r:.0f}" for r in on),
                    f"{np.mean(on) / np.mean(off):.2f}×"])  # fmt: skip
    return out, factor_mix(data[True])


@dataclass(frozen=True)
class Rounds:
    """Per-core rates (samples/s) of each named dataset, one per interleaved round, and the
    load average (1, 5, 15 min) when the rounds started."""

    rates: dict[str, list[float]]
    load: tuple[float, float, float]

    def mean(self, name: str) -> float:
        return float(np.mean(self.rates[name]))

    def listed(self, name: str) -> str:
        return ", ".join(f"{r:.0f}" for r in self.rates[name])


def interleaved(datasets: dict[str, torch.utils.data.Dataset], rounds: int, rate) -> Rounds:
    """``rounds`` rounds, each measuring ``rate(dataset)`` of every dataset in turn: the
    machine's load falls on all of them alike."""
    load = os.getloadavg()
    rates: dict[str, list[float]] = {name: [] for name in datasets}
    for _ in range(rounds):
        for name, dataset in datasets.items():
            rates[name].append(rate(dataset))
    return Rounds(rates, load)


def load_text(load: tuple[float, float, float]) -> str:
    return f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min, {os.cpu_count()} cores)"


def mpii_prepared_compare(samples: int, rounds: int, world: Path = WORLD) -> tuple[list, str]:
    """MPII raw (the reader's default) vs its prepared folder in ONE process, ``rounds``
    interleaved rounds of one worker's reads and of a 2-worker DataLoader: table rows of per-core
    rates and the prepared / raw ratio of the means, and the load average."""
    from datamodules.mpii import MPIIDataset

    torch.set_num_threads(1)
    as_worker()
    root = mpii_world(world)
    mpii_prepared(world)
    data = {
        "raw": MPIIDataset(root, split="train", augment=True),
        "prepared": MPIIDataset(
            None, prepared=world / "prepared" / "mpii", split="train", augment=True
        ),
    }
    out = []
    item = interleaved(data, rounds, lambda d: samples_per_second(d, samples))
    loader = interleaved(data, rounds, lambda d: loader_rate(d, samples))
    for name, r in (("one worker's reads", item), ("DataLoader, 2 workers, batch 24", loader)):
        ratio = r.mean("prepared") / r.mean("raw")
        out.append([name, r.listed("raw"), r.listed("prepared"), f"{ratio:.2f}×"])
    return out, load_text(item.load)


def gpu_demand() -> tuple[float, str]:
    """(256² images/s one GPU consumes in pose training, how it was obtained)."""
    from deephar.config import MPII_2D

    if torch.cuda.is_available():
        from benchmarks.bench_train import measure

        _, rate = measure("pose", MPII_2D, GPU_BATCH, GPU_STEPS, "cuda", "bf16+channels_last")
        return rate, f"measured: bench_train pose K=8 256² bf16 on {torch.cuda.get_device_name()}"
    from benchmarks.bench_cpu_pose import gflop_per_image
    from deephar.models.pose import PoseNet

    fwd = gflop_per_image(PoseNet(MPII_2D).eval(), MPII_2D.input_size) * 1e9
    rate = H100_BF16_DENSE * ASSUMED_MFU / (3 * fwd)
    how = (f"estimate: {fwd / 1e9:.1f} GFLOP forward per image × 3, H100 bf16 "
           f"{H100_BF16_DENSE / 1e12:.0f} TFLOP/s × {ASSUMED_MFU:.0%} utilisation")  # fmt: skip
    return rate, how


def rows(
    samples: int, world: Path = WORLD, rounds: int = MPII_ROUNDS
) -> tuple[list[list[str]], dict[str, str]]:
    """The table's rows (each pipeline's per-core rate; the MPII raw / prepared pair in
    ``rounds`` interleaved rounds of 2 × ``samples`` reads, their mean) and the run's facts."""
    torch.set_num_threads(1)
    as_worker()
    paths = real_world(world)
    demand, how = gpu_demand()
    data = pipelines(paths)
    mpii = [key for key in data if key[0].startswith("MPII")]
    pair = interleaved(
        {k: data[k] for k in mpii}, rounds, lambda d: samples_per_second(d, 2 * samples)
    )
    rates = {
        key: pair.mean(key) if key in mpii else samples_per_second(ds, samples)
        for key, ds in data.items()
    }
    out = []
    for (name, path), rate in rates.items():
        images = CLIP if "clip" in name else 1
        need = demand / images
        raw = rates[(name, "raw")]
        out.append([name, path, f"{rate:.1f}", f"{rate / raw:.1f}×", f"{need:.0f}",
                    f"{need / rate:.0f}"])  # fmt: skip
    facts = json.loads((world / "bench_world.json").read_text())
    extra = {"GPU demand": f"{demand:.0f} images/s ({how})",
             "preparation (1 core)": ", ".join(
                 f"{k}: {facts[k]['frames_stored']} frames of {facts[k]['videos']} videos in "
                 f"{facts[k]['prepare_s']} s, chunks {facts[k]['chunks_s']} s" for k in ("h36m", "ntu"))}  # fmt: skip
    raw, prep = mpii
    extra["MPII preparation (1 core)"] = (
        f"{facts['mpii']['frames_stored']} crops (3 scales per person) in "
        f"{facts['mpii']['prepare_s']} s"
    )
    extra["MPII prepared / raw, interleaved"] = (
        f"{pair.mean(prep) / pair.mean(raw):.2f}× (rounds: raw {pair.listed(raw)}, prepared "
        f"{pair.listed(prep)} samples/s per core); load average at the start "
        f"{load_text(pair.load)}"
    )
    return out, extra


COLUMNS = ["dataset (training, augmented)", "path", "samples/s per core", "vs raw",
           "GPU demand samples/s", "cores per GPU"]  # fmt: skip


@register
def data_real(ctx: BenchContext) -> BenchReport:
    samples = 8 if ctx.quick else 24
    try:
        body, extra = rows(samples, rounds=2 if ctx.quick else MPII_ROUNDS)
    finally:
        torch.set_num_threads(ctx.threads)
    md = header(ctx, "Data loading at real resolution, one core: raw vs prepared vs chunks", extra)
    note = ("\nOne process, torch threads 1, random order; decode + crop + augment + normalise; "
            "rates per CPU-second of the process (one core's rate even on a busy machine, where "
            "caches are shared: compare rows of one run).\n")  # fmt: skip
    return BenchReport("data_real", md + "\n" + table(body, COLUMNS) + note)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=WORLD)
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--mpii", action="store_true", help="MPII raw only: item and DataLoader rates")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="MPII raw, reduced_decode off vs on, interleaved rounds in one process",
    )
    ap.add_argument(
        "--prepared",
        action="store_true",
        help="MPII raw vs its prepared folder, interleaved rounds in one process",
    )
    ap.add_argument("--rounds", type=int, default=3, help="--compare / --prepared: rounds")
    args = ap.parse_args(argv)
    if args.prepared:
        body, load = mpii_prepared_compare(args.samples, args.rounds, args.world)
        cols = ["MPII 1280×720, samples/s per core", "raw (rounds)", "prepared (rounds)"]
        cols.append("prepared / raw (means)")
        print(f"- load average at the start: {load}")
        print(table(body, cols))
        return
    if args.compare:
        body, mix = mpii_compare(args.samples, args.rounds, args.world)
        cols = ["MPII raw 1280×720, samples/s per core", "reduced_decode off (rounds)",
                "on (rounds)", "on / off (means)"]  # fmt: skip
        print(f"- decode factors of the reads: {mix}")
        print(table(body, cols))
        return
    if args.mpii:
        print(table(mpii_rows(args.samples, args.world), ["dataset", "path", "samples/s per core"]))
        return
    body, extra = rows(args.samples, args.world)
    print("\n".join(f"- {k}: {v}" for k, v in extra.items()))
    print(table(body, COLUMNS))


if __name__ == "__main__":
    main()
