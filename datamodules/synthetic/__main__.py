"""``python -m datamodules.synthetic --out data/synthetic --size demo --seed 0``"""

from __future__ import annotations

import argparse
import time

from datamodules.synthetic.world import RESOLUTIONS, SIZES, generate_world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Generate the synthetic world (4 dataset formats)."
    )
    parser.add_argument("--out", default="data/synthetic", help="root folder of the world")
    parser.add_argument("--size", default="demo", choices=sorted(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resolution",
        default="small",
        choices=sorted(RESOLUTIONS),
        help="frame sizes: small (320×240-ish, fast) or real (H36M 1000×1002, NTU 1920×1080, "
        "MPII 1280×720)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"synthetic world ({args.size}, {args.resolution}, seed {args.seed}) → {args.out}")
    paths = generate_world(
        args.out, args.size, args.seed, lambda m: print("  " + m, flush=True), args.resolution
    )
    print(f"done in {time.perf_counter() - start:.1f} s: {paths['manifest']}", flush=True)


if __name__ == "__main__":
    main()
