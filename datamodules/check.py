"""Check a dataset download before training: ``python -m datamodules.check {mpii,penn,h36m,ntu} ROOT``.

Each ``check_<dataset>(root) -> list[str]`` prints what it counted and returns the problems found
(empty when the folder matches the official split sizes); ``CHECKS`` maps names to checks so other
readers can register theirs. Exit status 1 when a problem is found.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from datamodules.base import require_dir

# Standard MPII split (Tompson et al.) in persons; the official .mat's train side keeps every
# annotated person of the img_train images, so only its validation size is fixed.
MPII_SPLIT_SIZES = {".json": {"train": 22246, "val": 2958}, ".mat": {"val": 2958}}


def count_files(folder: Path, suffix: str) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for e in os.scandir(folder) if e.name.endswith(suffix))


def check_mpii(root: str | Path) -> list[str]:
    """Annotation parses, split sizes, every referenced image present."""
    from datamodules.mpii import find_annotation, load_annotations

    root = require_dir(root, "MPII root")
    images = require_dir(root / "images", "MPII images")
    path = find_annotation(root)
    ann = load_annotations(root, path)
    problems = []
    for split in ("train", "val"):
        found, size = int((ann.is_val == (split == "val")).sum()), MPII_SPLIT_SIZES[path.suffix]
        print(f"mpii {split}: {found} persons in {path.name} (standard: {size.get(split, '?')})")
        if split in size and found != size[split]:
            problems.append(f"mpii {split}: {found} persons, the standard split has {size[split]}")
    names = np.unique(ann.image)
    missing = [str(n) for n in names if not (images / n).is_file()]
    print(f"mpii images: {len(names) - len(missing)} of {len(names)} referenced images present")
    if missing:
        problems.append(f"mpii: {len(missing)} images missing from {images}, e.g. {missing[:3]}")
    known = int((ann.head_size() > 0).sum())
    if known < len(ann.image):
        print(f"mpii: head boxes known for {known} of {len(ann.image)} persons (pck_ref 0 else)")
    return problems


def check_penn(
    root: str | Path,
    frames: bool = True,
    splits: tuple[str, ...] = ("train", "test"),
    sizes: dict[str, int] | None = None,
) -> list[str]:
    """Label files parse, the sizes of ``splits`` (``sizes``, default the official ones), one
    frame per labelled frame (when ``frames`` and a frames/ folder exists: a labels-only folder
    serves the annotated-pose experiment)."""
    from datamodules.penn import SPLIT_SIZES, load_label

    labels = require_dir(Path(root) / "labels", "Penn Action labels")
    videos, problems = [], []
    for path in sorted(labels.glob("*.mat")):
        try:
            videos.append(load_label(path))
        except ValueError as err:
            problems.append(str(err))
    for split, size in (sizes or SPLIT_SIZES).items():
        if split not in splits:
            continue
        found = sum(v.train == (split == "train") for v in videos)
        print(f"penn {split}: {found} videos (official: {size})")
        if found != size:
            problems.append(f"penn {split}: {found} videos, the official split has {size}")
    if frames and not (Path(root) / "frames").is_dir():
        print(
            "penn frames: no frames/ folder: labels only, enough for the annotated-pose "
            "experiment (EXP=penn_poses); clips need the frames"
        )
        frames = False
    if frames:
        folder = Path(root) / "frames"
        short = [
            v.video_id for v in videos if count_files(folder / v.video_id, ".jpg") < v.num_frames
        ]
        print(f"penn frames: {len(videos) - len(short)} of {len(videos)} videos complete")
        if short:
            problems.append(f"penn: {len(short)} videos lack frames in {folder}, e.g. {short[:3]}")
    return problems


def check_ntu(root: str | Path, version: int = 60) -> list[str]:
    from datamodules import ntu

    return ntu.check_download(root, version=version)


def check_h36m(root: str | Path) -> list[str]:
    from datamodules import h36m

    return h36m.check_download(root)


CHECKS: dict[str, Callable[..., list[str]]] = {
    "mpii": check_mpii,
    "penn": check_penn,
    "h36m": check_h36m,
    "ntu": check_ntu,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(CHECKS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--version", type=int, default=60, choices=(60, 120), help="NTU only")
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=("train", "test"),
        default=None,
        help="Penn only: the splits present (e.g. a training-only folder)",
    )
    args = parser.parse_args(argv)
    extra = {"version": args.version} if args.dataset == "ntu" else {}
    if args.splits and args.dataset == "penn":
        extra["splits"] = tuple(args.splits)
    try:
        problems = CHECKS[args.dataset](args.root, **extra)
    except (OSError, ValueError, KeyError) as err:
        problems = [f"{type(err).__name__}: {err}"]
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
