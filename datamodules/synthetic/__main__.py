"""``python -m datamodules.synthetic --out data/synthetic --size demo --seed 0``"""

from __future__ import annotations

import argparse
import time

from datamodules.synthetic.world import SIZES, generate_world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Generate the synthetic world (4 dataset formats)."
    )
    parser.add_argument("--out", default="data/synthetic", help="root folder of the world")
    parser.add_argument("--size", default="demo", choices=sorted(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"synthetic world ({args.size}, seed {args.seed}) → {args.out}", flush=True)
    paths = generate_world(
        args.out, args.size, args.seed, log=lambda m: print("  " + m, flush=True)
    )
    print(f"done in {time.perf_counter() - start:.1f} s: {paths['manifest']}", flush=True)


if __name__ == "__main__":
    main()
