"""``python -m datamodules.prepare <h36m|ntu|mpii> <root> --out <dir> [--workers N] [--quality Q]``

Decodes each video (MPII: each photo) of the download once and stores the frames training reads
as person crops (with the augmentation margin) in JPEG, with an index; resumable (a rerun skips
finished videos) and verified at the end. ``--chunks DIR`` also writes the prepared samples as LitData chunks for
streaming (``datamodules.prepare.chunks``, read by ``datamodules.streaming``). See docs/datasets.md, "Preparing Human3.6M and NTU for training
at scale" (its "MPII" part for ``mpii``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from datamodules.prepare import h36m, mpii, ntu
from datamodules.prepare.chunks import write_chunks
from datamodules.prepare.runner import JOB_UNITS, Job, JobFn, prepare


def build(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m datamodules.prepare", description=__doc__.split("\n\n")[1]
    )
    ap.add_argument("dataset", choices=("h36m", "ntu", "mpii"))
    ap.add_argument("root", help="the download (the layout of docs/datasets.md)")
    ap.add_argument("--out", required=True, help="folder of the prepared data (created)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    ap.add_argument("--input-size", type=int, default=256, help="largest network input served")
    ap.add_argument("--subjects", type=int, nargs="+", help="h36m: subjects (default protocol 1)")
    ap.add_argument("--frame-step", type=int, help="h36m: keep i %% step == 0 (default 5 / 64)")
    ap.add_argument("--version", type=int, default=60, choices=(60, 120), help="ntu: release")
    ap.add_argument("--clip-lengths", type=int, nargs="+", default=[20], help="ntu: clip T")
    ap.add_argument("--layout", default="pa20j", help="ntu: the reader's joint layout")
    ap.add_argument("--annotation", help="mpii: the annotation file (default: found in root)")
    ap.add_argument("--chunks", help="also write LitData chunks of the prepared samples here")
    ap.add_argument("--chunk-bytes", default="64MB", help="LitData chunk size (default 64MB)")
    ap.add_argument(
        "--benchmark",
        default="xsub",
        choices=("xsub", "xview", "xset"),
        help="ntu: the split the chunks' train/ and test/ follow",
    )
    return ap.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[Job], JobFn, dict]:
    """The jobs, their function and options of the command's dataset (no frame read)."""
    if args.dataset == "h36m":
        jobs = h36m.jobs(args.root, tuple(args.subjects or ()), args.frame_step)
        return jobs, h36m.run, h36m.options(args.input_size, args.quality)
    if args.dataset == "mpii":
        options = mpii.options(args.root, args.annotation, args.input_size, args.quality)
        return mpii.jobs(args.root, args.annotation), mpii.run, options
    options = ntu.options(
        args.input_size, args.quality, args.clip_lengths, args.layout, version=args.version
    )
    return ntu.jobs(args.root, args.version), ntu.run, options


def main(argv: list[str] | None = None) -> int:
    args = build(argv)
    start = time.perf_counter()
    unit = JOB_UNITS.get(args.dataset, "videos")
    try:
        jobs, fn, options = plan(args)
        print(f"{args.dataset}: {len(jobs)} {unit} in {args.root} → {args.out}", flush=True)
        prepare(args.dataset, fn, jobs, args.out, options, args.workers)
    except (RuntimeError, OSError, ValueError) as err:  # failed verification, a bad input file
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.chunks and args.dataset == "mpii":
        print("--chunks: h36m and ntu only (an MPII prepared folder is read as it is)")
    elif args.chunks:
        write_chunks(
            args.out,
            args.chunks,
            args.dataset,
            args.workers,
            args.chunk_bytes,
            benchmark=args.benchmark,
            version=args.version,
        )
    print(f"done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
