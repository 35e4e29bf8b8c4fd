"""``python -m datamodules.prepare <h36m|ntu> <root> --out <dir> [--workers N] [--quality Q]``

Decodes each video of the download once and stores the frames training reads as person crops
(with the augmentation margin) in JPEG, with an index; resumable (a rerun skips finished videos)
and verified at the end. ``--chunks DIR`` also writes the prepared samples as LitData chunks for
streaming (``datamodules.prepare.chunks``, read by ``datamodules.streaming``). See docs/datasets.md, "Preparing Human3.6M and NTU for training
at scale".
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from datamodules.prepare import h36m, ntu
from datamodules.prepare.chunks import write_chunks
from datamodules.prepare.runner import prepare


def build(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m datamodules.prepare", description=__doc__.split("\n\n")[1]
    )
    ap.add_argument("dataset", choices=("h36m", "ntu"))
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
    ap.add_argument("--chunks", help="also write LitData chunks of the prepared samples here")
    ap.add_argument("--chunk-bytes", default="64MB", help="LitData chunk size (default 64MB)")
    ap.add_argument(
        "--benchmark",
        default="xsub",
        choices=("xsub", "xview", "xset"),
        help="ntu: the split the chunks' train/ and test/ follow",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = build(argv)
    start = time.perf_counter()
    if args.dataset == "h36m":
        jobs = h36m.jobs(args.root, tuple(args.subjects or ()), args.frame_step)
        fn, options = h36m.run, h36m.options(args.input_size, args.quality)
    else:
        jobs = ntu.jobs(args.root, args.version)
        fn = ntu.run
        options = ntu.options(
            args.input_size, args.quality, args.clip_lengths, args.layout, version=args.version
        )
    print(f"{args.dataset}: {len(jobs)} videos in {args.root} → {args.out}", flush=True)
    try:
        prepare(args.dataset, fn, jobs, args.out, options, args.workers)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    if args.chunks:
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
